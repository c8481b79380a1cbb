"""Benchmark the marlin W4A16 kernel against bf16 F.linear on Llama-8B-like shapes (GPU only).

    python3 -m tools.marlin_bench [--out marlin_bench.json] [--ms 1,16,32,64,128,1024]

Weights rotate over enough layer copies to exceed twice the L2 (no L2 reuse between calls). Timing
is ``tools/harness.py``: each kernel's calls over all copies replayed as one CUDA graph (so Python
launch overhead is not timed), median per call; the eager per-call median is reported too.
Writes JSON to --out and prints a table with the card's name.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from qlinear.config import MPLinearLayerConfig
from qlinear.formats.int_pack import dequantize_wna16
from qlinear.layers import make_layer, quantize_layer_params
from qlinear.scalar_type import scalar_types
from qlinear_marlin.mp import MarlinMPLinearKernel

from .harness import Timer, copies_for, rel_error

HBM_BPS = 3.0e12  # device-to-device copy rate of the lent H100 (~3.0 TB/s): the memory floor's rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="marlin_bench.json")
    ap.add_argument("--ms", default="1,16,32,64,128,1024")
    args = ap.parse_args()
    ms = [int(v) for v in args.ms.split(",")]
    dev = torch.device("cuda")
    card = torch.cuda.get_device_name()
    timer = Timer(dev, max_time=0.06)  # per point: ~60 ms of replays (do_bench rep), as before the shared harness

    def graph_time_us(calls):
        return timer(lambda i: calls[i](), len(calls), graph=True)

    def eager_time_us(calls):
        return timer(lambda i: calls[i](), len(calls))

    rows = []
    for n, k in ((4096, 4096), (14336, 4096)):
        c = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
        q_bytes = n * k // 2 + n * (k // 128) * 2
        copies_q = copies_for(q_bytes, dev)
        copies_b = copies_for(2 * n * k, dev)
        gen = torch.Generator(device=dev).manual_seed(0)
        layers, kern = [], MarlinMPLinearKernel.create(c)
        ref_w = None
        for i in range(copies_q):
            w = torch.randn(n, k, device=dev, generator=gen) * 0.05
            p = quantize_layer_params(c, w)
            if i == 0:
                ref_w = dequantize_wna16(c.weight_type, p["weight_packed"], p["weight_scale"], group_size=128,
                                         dtype=torch.float32)
            layer = make_layer(c, p)
            kern.process_weights_after_loading(layer)
            layers.append(layer)
            del w
        bf_ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16, generator=gen) * 0.05 for _ in range(copies_b)]
        for m in ms:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen)
            out = kern.apply(layers[0], x)
            ref = x.float() @ ref_w.t()
            err = rel_error(out, ref)
            mq = [lambda L=L: kern.apply_weights(L, x) for L in layers]
            mb = [lambda W=W: F.linear(x, W) for W in bf_ws]
            t_q, t_b = graph_time_us(mq), graph_time_us(mb)
            e_q = eager_time_us(mq)
            # both paths at larger M, to place the tile-kernel / dequant+cuBLAS switch (dequant_min_m)
            t_tile = t_dense = None
            if m >= 32:
                auto = kern.dequant_min_m
                try:
                    kern.dequant_min_m = 1 << 30
                    t_tile = graph_time_us(mq)
                    kern.dequant_min_m = 1
                    t_dense = graph_time_us(mq)
                finally:
                    kern.dequant_min_m = auto
            floor = (q_bytes + 2 * m * k + 2 * m * n) / HBM_BPS * 1e6
            rows.append(dict(card=card, N=n, K=k, M=m, marlin_us=t_q, marlin_eager_us=e_q, bf16_linear_us=t_b,
                             tile_path_us=t_tile, dense_path_us=t_dense, dequant_min_m=kern.dequant_min_m,
                             w4a16_floor_us=floor, marlin_over_floor=t_q / floor, speedup_vs_bf16=t_b / t_q,
                             rel_error=err, copies=copies_q))
            print(f"  N={n} K={k} M={m}: marlin {t_q:.1f} us (eager {e_q:.1f}; tile {t_tile}, dense {t_dense}), "
                  f"bf16 {t_b:.1f} us, err {err:.2e}", flush=True)
        del layers, bf_ws
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(dict(card=card, torch=torch.__version__, rows=rows), f, indent=1)
    print(f"\nW4A16 (uint4b8, group 128, bf16) on {card}, median us, CUDA graph over rotated copies")
    f = lambda v: f"{v:8.1f}" if v is not None else f"{'-':>8}"  # noqa: E731
    print(f"{'N x K':>12} {'M':>5} {'marlin':>8} {'eager':>8} {'tile':>8} {'dense':>8} {'bf16':>8} {'floor':>7} "
          f"{'x floor':>8} {'vs bf16':>8} {'err':>9}")
    for r in rows:
        print(f"{r['N']:>6}x{r['K']:<5} {r['M']:>5} {f(r['marlin_us'])} {f(r['marlin_eager_us'])} {f(r['tile_path_us'])} "
              f"{f(r['dense_path_us'])} {f(r['bf16_linear_us'])} {r['w4a16_floor_us']:>7.1f} {r['marlin_over_floor']:>8.2f} "
              f"{r['speedup_vs_bf16']:>7.2f}x {r['rel_error']:>9.2e}")
    print("marlin = default path (tile kernel below dequant_min_m rows, else dequant + cuBLAS); "
          "targets: M<=16 within 1.7x floor; <= bf16 up to M=64")


if __name__ == "__main__":
    main()
