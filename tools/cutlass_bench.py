"""Side-by-side timing of the cutlass kernels on one GPU (CUDA graphs), printed as a compact table.

Per (layer N x K, M): bf16 ``F.linear`` (cuBLAS); FP8 per-token x per-channel through cutlass, torch
(row-wise ``_scaled_mm``) and triton, each as a whole layer (activation quantization included) and,
for cutlass and ``_scaled_mm``, the GEMM alone on pre-quantized activations; INT8 dynamic symmetric
through cutlass and triton, cutlass INT8 asymmetric, and block FP8 (1x128 / 128x128) through cutlass
and triton. Each timing is the median over graph
replays of 20 calls cycling through enough weight copies to defeat the L2 (``qlinear.timing.graph_us``,
``harness.copies_for``). Writes JSON with --out.

    python -m tools.cutlass_bench [--shapes 4096x4096,...] [--m 1,16,...] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from qlinear import quant_key as qk, timing
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig

from .harness import copies_for

SHAPES = "4096x4096,6144x4096,28672x4096,4096x14336"  # N x K: o_proj, qkv, gate_up, down (Llama-3-8B)
MS = "1,16,128,512,2048,4096"
CALLS = 20


def graph_us(step, reps: int = 15) -> float:
    """Median µs per call over ``reps`` replays of a CUDA graph of CALLS consecutive ``step(j)``."""
    return timing.graph_us(step, "cuda", calls=CALLS, reps=reps)


TILES = ("small", "mid", "large")


def sweep(prepared, x, n, copies) -> dict:
    """{family: {tile: us}} for the cutlass kernels with each tile forced (QLINEAR_CUTLASS_TILE)."""
    import os

    out = {}
    for fam, col in (("fp8", "cutlass-fp8"), ("i8", "cutlass-i8"), ("blk", "cutlass-blk")):
        pairs = prepared.get(col)
        if pairs is None:
            continue
        out[fam] = {}
        for t in TILES:
            os.environ["QLINEAR_CUTLASS_TILE"] = t
            try:
                out[fam][t] = graph_us(lambda j: pairs[j % copies][0].apply_weights(pairs[j % copies][1], x), reps=8)
            finally:
                del os.environ["QLINEAR_CUTLASS_TILE"]
    return out


def kernel_cls(provider: str, name: str):
    from qlinear.registry import get_registry

    for fam in ("fp8", "int8", "fp8_block"):
        for k in get_registry().kernels(fam):
            if k.provider == provider and k.__name__ == name:
                return k
    return None


def layers_for(kc, config, weights, calib):
    """[(kernel, layer)] over the weight copies (``qlinear.timing``'s rotation helpers)."""
    prep = timing.prepare_kernel(kc, config, timing.quantize_copies(config, weights, calib), weights[0].device)
    return list(zip(prep.kernels, prep.layers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--m", default=MS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-sweep", action="store_true", help="skip the per-tile sweep of the cutlass layers")
    args = ap.parse_args()
    dev = torch.device("cuda")
    fp8_cfg = lambda n, k: FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k), torch.bfloat16)  # noqa: E731
    int8_cfg = lambda n, k, sym: Int8ScaledMMLinearLayerConfig(False, True, sym, (n, k), torch.bfloat16)  # noqa: E731
    blk_cfg = lambda n, k: FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k), torch.bfloat16)  # noqa: E731
    kinds = [  # (column, family config maker, provider, class)
        ("cutlass-fp8", fp8_cfg, "cutlass", "CutlassFP8ScaledMMLinearKernel"),
        ("torch-fp8", fp8_cfg, "torch", "TorchCudaRowWiseFP8ScaledMMLinearKernel"),
        ("triton-fp8", fp8_cfg, "triton", "TritonFP8ScaledMMLinearKernel"),
        ("cutlass-i8", lambda n, k: int8_cfg(n, k, True), "cutlass", "CutlassInt8ScaledMMLinearKernel"),
        ("triton-i8", lambda n, k: int8_cfg(n, k, True), "triton", "TritonInt8ScaledMMLinearKernel"),
        ("cutlass-i8a", lambda n, k: int8_cfg(n, k, False), "cutlass", "CutlassInt8ScaledMMLinearKernel"),
        ("cutlass-blk", blk_cfg, "cutlass", "CutlassFp8BlockScaledMMLinearKernel"),
        ("triton-blk", blk_cfg, "triton", "TritonFp8BlockScaledMMLinearKernel"),
    ]
    print(f"# {torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA graphs, {CALLS} calls/replay, "
          "median us per call and speed-up over bf16; gemm-* = GEMM alone on pre-quantized x")
    cols = ["bf16", "cutlass-fp8", "gemm-cutlass-fp8", "gemm-scaled_mm", "torch-fp8", "triton-fp8", "cutlass-i8",
            "triton-i8", "cutlass-i8a", "cutlass-blk", "triton-blk"]
    print(f"{'N x K':>11} {'M':>4} " + " ".join(f"{c:>12}" for c in cols))
    results = []
    for shape in args.shapes.split(","):
        n, k = map(int, shape.split("x"))
        copies = copies_for(n * k, dev, min_copies=1, max_copies=8)  # fp8 bytes; bf16 copies are 2x and rotate too
        g = torch.Generator().manual_seed(0)
        weights = [(torch.randn(n, k, generator=g) * 0.02).to(dev) for _ in range(copies)]
        calib = torch.randn(16, k, device=dev)
        w16 = [w.to(torch.bfloat16) for w in weights]
        prepared = {}
        for col, mk, prov, name in kinds:
            kc = kernel_cls(prov, name)
            if kc is None or not kc.is_supported()[0] or not kc.can_implement(mk(n, k))[0]:
                continue
            t = time.time()
            prepared[col] = layers_for(kc, mk(n, k), weights, calib)
            if col == "cutlass-fp8" and not results:
                print(f"# cutlass extension ready in {time.time() - t:.1f} s (build or disk cache)")
        for m in map(int, args.m.split(",")):
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            row = {"n": n, "k": k, "m": m}
            row["bf16"] = graph_us(lambda j: F.linear(x, w16[j % copies]))
            for col, pairs in prepared.items():
                row[col] = graph_us(lambda j, p=pairs: p[j % copies][0].apply_weights(p[j % copies][1], x))
            if "cutlass-fp8" in prepared:  # the GEMM alone, on the same pre-quantized activations
                kern0, lay0 = prepared["cutlass-fp8"][0]
                q, s = kern0._quantize(lay0, x)
                pairs = prepared["cutlass-fp8"]
                row["gemm-cutlass-fp8"] = graph_us(lambda j: pairs[j % copies][0]._launch(
                    q, pairs[j % copies][1].weight.t(), s, pairs[j % copies][1].weight_scale, None, None, None,
                    torch.bfloat16, n))
                sa = s.reshape(-1, 1).expand(m, 1).contiguous()
                sbs = [p[1].weight_scale.reshape(1, -1).contiguous() for p in pairs]
                row["gemm-scaled_mm"] = graph_us(lambda j: torch._scaled_mm(
                    q, pairs[j % copies][1].weight, scale_a=sa, scale_b=sbs[j % copies], out_dtype=torch.bfloat16))
            if not args.no_sweep:  # each tile config forced, GEMM alone: data for the M buckets
                row["sweep"] = sweep(prepared, x, n, copies)
            results.append(row)
            cells = []
            for c in cols:
                v = row.get(c)
                cells.append(f"{'-':>12}" if v is None else f"{v:6.1f} {row['bf16'] / v:4.2f}x")
            print(f"{shape:>11} {m:>4} " + " ".join(cells), flush=True)
        del prepared, weights, w16
        torch.cuda.empty_cache()
    if not args.no_sweep:
        print("\n# per-tile sweep, whole cutlass layers (us, quantization included): FP8 / INT8 per-token x per-channel, block FP8 (its mid = large)")
        print(f"{'N x K':>11} {'M':>4} " + " ".join(f"{f + '-' + t:>13}" for f in ("fp8", "i8", "blk") for t in TILES))
        for r in results:
            sw = r.get("sweep", {})
            print(f"{r['n']}x{r['k']:>6} {r['m']:>4} " + " ".join(
                f"{sw.get(f, {}).get(t, float('nan')):13.1f}" for f in ("fp8", "i8", "blk") for t in TILES), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "unit": "us",
                       "method": f"CUDA graph of {CALLS} calls, median of replays", "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
