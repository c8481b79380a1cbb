"""The mid-M W4A16 tensor-core kernels (qlinear_triton.w4a16_swap_kernels: the swapped kernel and the
B-operand kernel) against bf16 and the path the triton W4A16 kernel selected before them, on the
Llama-3-8B linear shapes.

For N x K in 6144x4096 (qkv), 4096x4096 (o), 28672x4096 (gate_up), 4096x14336 (down) and
M in 8, 16, 32, 64, 128, 256, 512 it times under CUDA-graph replay (``tools/harness.py`` over
``qlinear.timing``; weights rotated over enough copies to stream from HBM):
- ``bf16``: F.linear on the bf16 weight;
- ``old``: the W4A16 kernel with the swapped kernel switched off (``swap_max_m = 0``: GEMV, 16-row
  tiles, or dequantize + cuBLAS from M = 128, as before);
- ``default``: the W4A16 kernel as shipped (the swapped kernel inside swap_min_m..swap_max_m);
- each candidate tile of the swapped kernel for that M (CANDIDATES, pinned with ``pin_tile``),
  its output checked against ``old``'s (relative error; a candidate that fails to compile or run
  is recorded, not fatal).
GPTQ uint4b8, group 128, bf16 activations. Prints a table (us, speedup over bf16 and over old) and
writes w4a16_sweep.json under --out. About 40 distinct compiles (the split count is not a
compile-time constant); budgeted to finish in a few minutes on an H200.

    python3 -m tools.triton_w4a16_sweep [--out DIR] [--m 16,64] [--shapes 4096x4096] [--label TAG]
    python3 -m tools.triton_w4a16_sweep --smoke     # CPU: every candidate once through the interpreter
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch
import torch.nn.functional as F

from .harness import Timer, copies_for, make_layers, rel_error

SHAPES = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))  # (N, K)
MS = (8, 16, 32, 64, 128, 256, 512)  # 8: whether the swapped kernel should start below 16 (swap_min_m)

# Candidates per M: (BM, BN, warps, stages, variant). Variants of the swapped kernel: "wide" (the
# block's 8 slabs as one [BN, 128] register operand), "wide8" (the same with the g128 scale row loaded
# per slab: Triton lays the dequantization out differently), "" (one K = 16 dot per slab); "wideB":
# w4a16_wideb_kernel (the weight as the B operand, both wgmma operands in shared memory, one async dot
# per block; BM >= 64), "wideB8" its per-slab scale loads. Split counts follow configs.swap_split.
CANDIDATES = {
    8: [(16, 128, 4, 4, "wide"), (16, 64, 4, 4, "wide")],  # the M = 16 compiles (M is not specialized)
    16: [(16, 128, 4, 4, "wide"), (16, 128, 4, 4, "wide8"), (16, 64, 4, 4, "wide"), (16, 128, 8, 4, "wide"),
         (16, 128, 4, 4, ""), (16, 128, 4, 3, "wideB")],  # wideB at BM 16 / 32: mma.sync, no wgmma
    32: [(32, 128, 4, 4, "wide"), (32, 128, 4, 4, "wide8"), (32, 64, 4, 4, "wide"), (64, 64, 4, 3, "wideB"),
         (32, 128, 4, 3, "wideB")],
    64: [(64, 128, 4, 3, "wideB"), (64, 128, 4, 3, "wideB8"), (64, 64, 4, 3, "wideB"), (64, 128, 4, 2, "wideB"),
         (64, 256, 8, 3, "wideB"), (64, 128, 8, 3, "wide8")],
    128: [(128, 64, 4, 2, "wideB"), (128, 128, 8, 2, "wideB"), (64, 128, 4, 3, "wideB"), (128, 64, 4, 3, "wideB"),
          (128, 64, 4, 2, "wideB8"), (128, 128, 8, 3, "wide8")],
    256: [(128, 64, 4, 2, "wideB"), (128, 128, 8, 2, "wideB"), (64, 128, 4, 3, "wideB"), (256, 64, 8, 2, "wideB"),
          (256, 64, 8, 2, "wide8")],
    512: [(128, 64, 4, 2, "wideB"), (128, 128, 8, 2, "wideB"), (64, 128, 4, 3, "wideB"), (256, 64, 8, 2, "wideB")],
}


def _swap_tile(cand):
    from qlinear_triton.configs import SwapTile

    bm, bn, warps, stages, variant = cand
    return SwapTile(bm, bn, warps, stages, pair=variant == "pair", reg=variant == "reg",
                    wide=variant in ("wide", "wide8"), slab_scales=variant.endswith("8"),
                    bmajor=variant.startswith("wideB"))


def _name(cand) -> str:
    bm, bn, warps, stages, variant = cand
    return f"swap {bm}x{bn} w{warps} s{stages}" + (f" {variant}" if variant else "")


def _build(n, k, dev, copies):
    from qlinear.config import MPLinearLayerConfig
    from qlinear.scalar_type import scalar_types
    from qlinear_triton.mp import TritonW4A16LinearKernel

    cfg = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
    w = torch.randn(n, k, device=dev) * 0.02
    _, layers, kerns = make_layers(TritonW4A16LinearKernel, cfg, w, copies, torch.randn(64, k, device=dev))
    return w, layers, kerns


def _old(kern):
    """The kernel with the swapped path off (its documented switch), i.e. the selection before it."""
    k = copy.copy(kern)
    k.swap_max_m = 0
    return k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--m", default=None, help="comma list of M (default 16,32,64,128,256,512)")
    ap.add_argument("--shapes", default=None, help="comma list of NxK (default the four Llama-3-8B shapes)")
    ap.add_argument("--label", default="", help="a tag stored with the results")
    ap.add_argument("--max-time", type=float, default=0.1, help="seconds of timed calls per point")
    ap.add_argument("--smoke", action="store_true", help="CPU check of this script: a small shape, the "
                    "Triton interpreter, every candidate run once, nothing timed")
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    dev = torch.device("cpu" if args.smoke else "cuda")
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")] if args.shapes else list(SHAPES)
    if args.smoke:
        shapes = [(192, 256)]
    ms = [int(m) for m in args.m.split(",")] if args.m else list(MS)
    timer = Timer(dev, mode="once" if args.smoke else "time", max_time=args.max_time)
    torch.manual_seed(0)
    import triton
    from qlinear_triton.configs import SwapTile

    card = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name()
    print(f"{card} | torch {torch.__version__} | triton {triton.__version__} | {args.label}", flush=True)
    t0 = time.time()
    rows = []
    summary = []
    for n, k in shapes:
        cp = copies_for(n * k // 2, dev, min_copies=4) if timer.timing else 1
        w, layers, kerns = _build(n, k, dev, cp)
        wcp = copies_for(2 * n * k, dev, min_copies=2) if timer.timing else 1
        wb = [w.bfloat16()] + [w.bfloat16().clone() for _ in range(wcp - 1)]
        old = [_old(kk) for kk in kerns]
        for m in ms:
            x = torch.randn(m, k, device=dev).bfloat16()
            ref = old[0].apply(layers[0], x).float()
            res = {}

            def point(name, fn, check=True, extra=None):
                try:
                    err = rel_error(fn(0), ref) if check else None
                    us = timer(fn, cp if name != "bf16" else wcp, graph=True)
                    note = None
                except Exception as e:  # noqa: BLE001 - a config that fails is a data point, not the end
                    us, err, note = None, None, f"{type(e).__name__}: {e}"[:300]
                row = dict(n=n, k=k, m=m, name=name, graph_us=us, rel_err_vs_old=err, error=note, label=args.label,
                           **(extra or {}))
                rows.append(row)
                res[name] = us
                ok = f"{us:8.2f} us" if us is not None else "  FAILED"
                print(f"{n:5d}x{k:<5d} M={m:<4d} {name:34s} {ok}" +
                      (f"  rel.err {err:.1e}" if err is not None else "") +
                      (f"  {note}" if note else ""), flush=True)

            point("bf16", lambda i: F.linear(x, wb[i]), check=False)
            point("old", lambda i: old[i].apply(layers[i], x), check=False,
                  extra={"tile": str(old[0].tile_for(m)) if m < old[0].dense_min_m else "dequant+cuBLAS"})
            if isinstance(kerns[0].tile_for(m), SwapTile):  # the shipped selection uses the swapped kernel here
                point("default", lambda i: kerns[i].apply(layers[i], x), extra={"tile": str(kerns[0].tile_for(m))})
            for cand in CANDIDATES.get(m, []):
                ks = [copy.copy(kk).pin_tile(_swap_tile(cand)) for kk in kerns]
                point(_name(cand), lambda i, ks=ks: ks[i].apply(layers[i], x), extra={"cand": list(cand)})
            swaps = {a: b for a, b in res.items() if a.startswith("swap") and b is not None}
            best = min(swaps, key=swaps.get) if swaps else None
            summary.append(dict(n=n, k=k, m=m, bf16=res.get("bf16"), old=res.get("old"), default=res.get("default"),
                                best=best, best_us=swaps.get(best)))
        del w, layers, kerns, wb, old
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(f"\n{card}: us under CUDA-graph replay; x = speedup over bf16 (old/default/best swap)")
    print(f"{'N x K':12s} {'M':>4s} {'bf16':>8s} {'old':>8s} {'default':>8s} {'best swap':>9s}   "
          f"{'old x':>6s} {'dflt x':>6s} {'best x':>6s} {'best/old':>8s}  best config")
    for s in summary:
        def f(v):
            return f"{v:8.2f}" if v else "       -"

        def sp(v):
            return f"{s['bf16'] / v:6.2f}" if v and s["bf16"] else "     -"
        ratio = f"{s['old'] / s['best_us']:8.2f}" if s["best_us"] and s["old"] else "       -"
        print(f"{s['n']:5d}x{s['k']:<6d} {s['m']:4d} {f(s['bf16'])} {f(s['old'])} {f(s['default'])} "
              f"{f(s['best_us']):>9s}   {sp(s['old'])} {sp(s['default'])} {sp(s['best_us'])} {ratio}  {s['best']}")
    if len(shapes) > 1:  # one layer of the model: the decode step's ratio, per M
        print("\nsum over the shapes (one layer of the step): us, and speedup over bf16")
        for m in ms:
            ss = [s for s in summary if s["m"] == m]
            tot = {key: (sum(s[key] for s in ss) if all(s[key] for s in ss) else None)
                   for key in ("bf16", "old", "default", "best_us")}
            line = "  ".join(f"{key} {v:8.2f} ({tot['bf16'] / v:4.2f}x)" for key, v in tot.items() if v and tot["bf16"])
            print(f"M={m:<4d} {line}")
    print(f"wall {time.time() - t0:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "w4a16_sweep" + (f"_{args.label}" if args.label else "") + ".json")
    with open(path, "w") as fh:
        json.dump({"card": card, "torch": torch.__version__, "triton": triton.__version__, "label": args.label,
                   "summary": summary, "rows": rows}, fh, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
