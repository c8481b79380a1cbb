"""Side-by-side timing of the W4A16 kernels on one GPU (CUDA graphs), printed as a compact table.

Per (layer N x K, M): bf16 ``F.linear`` (cuBLAS) against GPTQ g128 (uint4b8) through the cutlass
mixed-input GEMM, triton, marlin and fbgemm, and AWQ g128 (uint4 + zero points) through cutlass and
triton; then the cutlass layers with each W4A16 tile forced (``QLINEAR_CUTLASS_W4A16_TILE``), the data
for its M buckets. Each timing is the median over graph replays of 20 calls cycling through enough
weight copies to defeat the L2. A provider that is not installed, not supported here, or fails to
build is reported and left out. Before timing, each kernel's output on one x is compared with
``F.linear`` on the dequantized weight (relative error printed once per shape). Writes JSON with --out.

    python -m tools.cutlass_w4a16_bench [--shapes 6144x4096,...] [--m 64,128,...] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

import torch
import torch.nn.functional as F

from qlinear import timing
from qlinear.config import MPLinearLayerConfig
from qlinear.families import family_of
from qlinear.scalar_type import scalar_types

from .harness import copies_for

SHAPES = "6144x4096,4096x4096,28672x4096,4096x14336"  # N x K: qkv, o_proj, gate_up, down (Llama-3-8B)
MS = "64,128,256,512,1024,2048,4096"
CALLS = 20
TILES = ("m16", "m64", "m128", "m256")  # of qlinear_cutlass.configs.W4A16_TILES (the wide ones: tools/cutlass_w4a16_tiles.py)
GPTQ = lambda n, k: MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)  # noqa: E731
AWQ = lambda n, k: MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4, torch.bfloat16, 128, True, False)  # noqa: E731
KINDS = [  # (column, config maker, provider, class name)
    ("cutlass-gptq", GPTQ, "cutlass", "CutlassW4A16LinearKernel"),
    ("triton-gptq", GPTQ, "triton", "TritonW4A16LinearKernel"),
    ("marlin-gptq", GPTQ, "marlin", "MarlinMPLinearKernel"),
    ("fbgemm-gptq", GPTQ, "fbgemm", "FbgemmW4A16LinearKernel"),
    ("cutlass-awq", AWQ, "cutlass", "CutlassW4A16LinearKernel"),
    ("triton-awq", AWQ, "triton", "TritonW4A16LinearKernel"),
]


def make_timer(smoke: bool):
    """``us(step, reps)``: median µs per call over graph replays of CALLS steps; with ``smoke`` (CPU,
    checks the script) each step runs once and 1.0 is returned."""
    def us(step, reps: int = 15) -> float:
        if smoke:
            for j in range(CALLS):
                step(j)
            return 1.0
        return timing.graph_us(step, "cuda", calls=CALLS, reps=reps)
    return us


def kernel_cls(provider: str, name: str, family: str = "mp"):
    from qlinear.registry import get_registry

    return next((k for k in get_registry().kernels(family) if k.provider == provider and k.__name__ == name), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--m", default=MS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-sweep", action="store_true", help="skip the per-tile sweep of the cutlass layers")
    ap.add_argument("--smoke", action="store_true", help="CPU: run each step once, time nothing (checks the script)")
    args = ap.parse_args()
    graph_us = make_timer(args.smoke)
    dev = torch.device("cpu" if args.smoke else "cuda")
    print(f"# {'cpu smoke run' if args.smoke else torch.cuda.get_device_name()} | torch {torch.__version__} | W4A16 group 128, bf16 activations | CUDA graphs, "
          f"{CALLS} calls/replay, median us per call and speed-up over bf16 F.linear")
    cols = ["bf16"] + [c for c, *_ in KINDS]
    results, skipped = [], {}

    def save():  # after every shape, so a run cut short by its time limit still leaves its rows
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"device": "cpu smoke" if args.smoke else torch.cuda.get_device_name(), "torch": torch.__version__,
                           "unit": "us", "method": f"CUDA graph of {CALLS} calls, median of replays", "skipped": skipped,
                           "rows": results}, f, indent=1)

    header = f"{'N x K':>11} {'M':>5} " + " ".join(f"{c:>13}" for c in cols)
    print(header)
    for shape in args.shapes.split(","):
        n, k = map(int, shape.split("x"))
        copies = copies_for(n * k // 2, dev, min_copies=2, max_copies=8)  # int4 bytes; bf16 copies rotate too
        g = torch.Generator().manual_seed(0)
        weights = [(torch.randn(n, k, generator=g) * 0.02).to(dev) for _ in range(copies)]
        calib = torch.randn(16, k, device=dev)
        w16 = [w.to(torch.bfloat16) for w in weights]
        params = {"gptq": timing.quantize_copies(GPTQ(n, k), weights, calib), "awq": timing.quantize_copies(AWQ(n, k), weights, calib)}
        deq = {fmt: family_of(mk(n, k)).dequantize_weight(mk(n, k), params[fmt][0].get, torch.float32)
               for fmt, mk in (("gptq", GPTQ), ("awq", AWQ))}
        prepared = {}
        xe = torch.randn(97, k, device=dev, dtype=torch.bfloat16)
        errs = []
        for col, mk, prov, name in KINDS:
            kc = kernel_cls(prov, name)
            if kc is None:
                skipped[col] = f"{prov} not installed"
                continue
            ok, why = kc.is_supported()
            ok2, why2 = kc.can_implement(mk(n, k))
            if not (ok and ok2):
                skipped[col] = why or why2
                continue
            t = time.time()
            try:
                prepared[col] = timing.prepare_kernel(kc, mk(n, k), params[col.split("-")[1]], dev)
            except Exception as e:  # noqa: BLE001 - a provider that fails to build is reported, not fatal
                skipped[col] = f"{type(e).__name__}: {str(e)[:200]}"
                traceback.print_exc(limit=2)
                continue
            if time.time() - t > 5:
                print(f"# {col}: prepared in {time.time() - t:.1f} s (includes its JIT build or disk-cache load)", flush=True)
            p = prepared[col]
            ref = F.linear(xe.float(), deq[col.split("-")[1]].to(dev))
            out = p.kernels[0].apply_weights(p.layers[0], xe).float()
            errs.append(f"{col} {float((out - ref).norm() / ref.norm()):.1e}")
        if errs:
            print(f"# {shape} relative error vs F.linear(dequantized W), M=97: " + ", ".join(errs), flush=True)
        for m in map(int, args.m.split(",")):
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            row = {"n": n, "k": k, "m": m}
            row["bf16"] = graph_us(lambda j: F.linear(x, w16[j % copies]))
            for col, p in prepared.items():
                row[col] = graph_us(lambda j, p=p: p.kernels[j % copies].apply_weights(p.layers[j % copies], x))
            if not args.no_sweep:
                for col in ("cutlass-gptq", "cutlass-awq"):
                    p = prepared.get(col)
                    if p is None:
                        continue
                    row[f"sweep-{col}"] = {}
                    for t in TILES:
                        os.environ["QLINEAR_CUTLASS_W4A16_TILE"] = t
                        try:
                            row[f"sweep-{col}"][t] = graph_us(
                                lambda j, p=p: p.kernels[j % copies].apply_weights(p.layers[j % copies], x), reps=8)
                        finally:
                            del os.environ["QLINEAR_CUTLASS_W4A16_TILE"]
            results.append(row)
            cells = [f"{'-':>13}" if row.get(c) is None else f"{row[c]:7.1f} {row['bf16'] / row[c]:4.2f}x" for c in cols]
            print(f"{shape:>11} {m:>5} " + " ".join(cells), flush=True)
        del prepared, weights, w16, params, deq
        torch.cuda.empty_cache()
        save()
    for col, why in skipped.items():
        print(f"# {col}: left out ({why})")
    if not args.no_sweep:
        print("\n# cutlass W4A16 per-tile sweep (us per call, each tile forced; configs.w4a16_tile_for picks per M and N)")
        print(f"{'N x K':>11} {'M':>5} " + " ".join(f"{f + '-' + t:>19}" for f in ("cutlass-gptq", "cutlass-awq") for t in TILES))
        for r in results:
            print(f"{str(r['n']) + 'x' + str(r['k']):>11} {r['m']:>5} " + " ".join(
                f"{r.get('sweep-' + f, {}).get(t, float('nan')):19.1f}" for f in ("cutlass-gptq", "cutlass-awq") for t in TILES))
    print("\n# summary: speed-up over bf16 (cutlass-gptq / best other GPTQ kernel) per M, geometric mean over shapes")
    for m in sorted({r["m"] for r in results}):
        rows = [r for r in results if r["m"] == m]

        def gmean(col):
            vals = [r["bf16"] / r[col] for r in rows if r.get(col)]
            return (torch.tensor(vals).log().mean().exp().item(), len(vals)) if vals else (float("nan"), 0)

        c, _ = gmean("cutlass-gptq")
        others = {col: gmean(col)[0] for col in ("triton-gptq", "marlin-gptq", "fbgemm-gptq")}
        ran = {k: v for k, v in others.items() if v == v}
        best = max(ran, key=ran.get) if ran else "none"
        print(f"M={m:>5}: cutlass {c:.2f}x | " + " ".join(f"{k} {v:.2f}x" for k, v in others.items()) + f" | best other: {best}")
    save()


if __name__ == "__main__":
    main()
