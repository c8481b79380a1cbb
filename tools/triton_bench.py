"""Time the triton provider's kernels on the GPU against torch in the same run.

Shapes of Llama-8B-like layers (N x K = 4096 x 4096 and 14336 x 4096; M = 1, 16, 128, 1024, 4096).
Each op rotates over enough weight copies (> 2x the L2) that it streams weights from HBM as a real
model's layer walk does. Timing is ``tools/harness.py`` (``qlinear.timing``: do_bench medians, and
for M <= 16 also CUDA-graph replay, no launch gaps). Prints a table; writes JSON to $OUT (or --out).

    python3 -m tools.triton_bench [--out DIR] [--quick] [--warm-only] [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys

import torch
import torch.nn.functional as F

from .harness import Timer, copies_for, make_layers, rel_error

HBM_BPS = 3.0e12  # device-to-device copy rate of the lent H100 (~3.0 TB/s): the memory floor's rate


# Alternative tiles timed per M bucket, GEMM only, under graph replay (kernel time without launch
# gaps); the shipped choice is listed first as "current". Tensor-core tiles: (bm, bn, bk, group_m,
# warps, stages); GEMV tiles (M <= 4): ("gemv", bm, bn, bk, programs per SM, warps, stages).
SWEEP_FP8 = {
    "gemv": [("gemv", 1, 8, 512, 2, 4, 1), ("gemv", 1, 8, 512, 1, 4, 1), ("gemv", 1, 16, 256, 2, 4, 1),
             ("gemv", 1, 8, 256, 2, 4, 1), ("gemv", 1, 8, 512, 2, 2, 1), ("gemv", 1, 16, 512, 2, 8, 1)],
    "small": [(16, 32, 256, 1, 4, 4), (16, 32, 128, 1, 4, 8)],
    "large": [(128, 256, 128, 8, 8, 3), (128, 128, 128, 8, 8, 4)],
}
SWEEP_W4 = {
    "gemv": [("gemv", 1, 128, 128, 8, 4, 1), ("gemv", 1, 64, 128, 8, 2, 1), ("gemv", 1, 128, 128, 4, 4, 1),
             ("gemv", 1, 128, 128, 16, 4, 1), ("gemv", 1, 256, 128, 8, 8, 1), ("gemv", 1, 128, 128, 8, 2, 1)],
    "small": [(16, 64, 128, 1, 4, 4), (16, 64, 128, 1, 4, 3)],
    "large": [(64, 128, 128, 8, 4, 3), "dense"],
}


def as_tile(t):
    from qlinear_triton.configs import GemvTile, SwapTile, Tile

    return GemvTile(*t[1:]) if t[0] == "gemv" else SwapTile(*t[1:]) if t[0] == "swap" else Tile(*t)


def tile_key(t):
    from qlinear_triton.configs import GemvTile, SwapTile

    if isinstance(t, (GemvTile, SwapTile)):
        return ("gemv" if isinstance(t, GemvTile) else "swap", *vars(t).values())
    return tuple(vars(t).values())


def sweep(timer, n, k, ms, dev, L8, K8, L4, K4, cp8, cp4, Q, launch_scaled_mm):
    from qlinear_triton import mm_kernels
    from qlinear_triton.scaled_mm import FixedTile

    out = []
    for m in ms:
        if m not in (1, 2, 16, 64):
            continue
        bucket = "gemv" if m <= 2 else ("small" if m <= 16 else "large")
        x = torch.randn(m, k, device=dev).bfloat16()
        xq, xs = Q.quant_fp8_per_token(x)
        o = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
        cur8, cur4 = K8[0].tile_for(m), K4[0].tile_for(m)
        bm = 1 << max(0, (m - 1).bit_length())
        fit = (lambda t: (t[0], bm, max(8, t[2] // bm), *t[3:])) if bucket == "gemv" else (lambda t: t)  # noqa: E731
        cands = [("fp8", t, False) for t in [tile_key(cur8)] + [fit(t) for t in SWEEP_FP8[bucket]]]
        cur4 = "dense" if m >= K4[0].dense_min_m else tile_key(cur4)
        cands += [("w4a16", t, False) for t in [cur4] + [(t[0], bm, *t[2:]) if bucket == "gemv" else t
                                                         for t in SWEEP_W4[bucket]]]
        seen = set()
        for kind, t, _ in cands:
            if (kind, t) in seen:
                continue
            first = not any(kk == kind for kk, _ in seen)
            seen.add((kind, t))
            tile = None if t == "dense" else as_tile(t)
            if kind == "fp8":
                fn = lambda i, tile=FixedTile(tile): launch_scaled_mm(  # noqa: E731
                    mm_kernels.scaled_mm_kernel, tile, xq, L8[i].weight.t(), o, xs, L8[i].weight_scale, None, None,
                    None, is_int8=False, a_mode=0, a_per_row=True, b_per_col=True, azp_mode=0)
                cp = cp8
            else:
                kerns = [copy.copy(kk) for kk in K4]
                for kk in kerns:  # "dense": dequantize + cuBLAS (mp.TritonW4A16LinearKernel.dense_min_m)
                    if tile is not None:
                        kk.pin_tile(tile)
                    kk.dense_min_m = 0 if tile is None else 1 << 30
                    kk.swap_max_m = 0 if tile is None else kk.swap_max_m  # "dense" means dense
                fn = lambda i, kerns=kerns: kerns[i].apply_weights(L4[i], x)  # noqa: E731
                cp = cp4
            try:
                fn(0)
                us = timer(fn, cp, graph=True)
                err = None
            except Exception as e:  # noqa: BLE001 - a tile that doesn't compile is a data point
                us, err = None, f"{type(e).__name__}: {e}"[:160]
            out.append(dict(n=n, k=k, m=m, kernel=kind, tile=t, current=first, graph_us=us, error=err))
            print(f"sweep {n}x{k} M={m:5d} {kind:6s} tile={t}{' (current)' if first else ''}: "
                  f"{'ERR ' + err if err else f'{us:.1f} us'}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--quick", action="store_true", help="only M = 1, 16, 1024")
    ap.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True,
                    help="also time alternative tile configs for the W4A16 and FP8 GEMMs (graph replay)")
    ap.add_argument("--warm-only", action="store_true",
                    help="compile every op and sweep tile once (one weight copy, no timing): fills the Triton cache")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU check of this script: tiny shapes through the Triton interpreter, one call per op, no timing")
    args = ap.parse_args(argv)

    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
    from qlinear.formats import reference_linear
    from qlinear.scalar_type import scalar_types
    from qlinear_triton import mm_kernels
    from qlinear_triton import quant as Q
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel
    from qlinear_triton.fp8_block import TritonFp8BlockScaledMMLinearKernel
    from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel
    from qlinear_triton.mp import TritonW4A16LinearKernel
    from qlinear_triton.scaled_mm import launch_scaled_mm

    import triton

    if args.smoke:
        dev, name, ms, shapes = torch.device("cpu"), "cpu (smoke, interpreter)", (1, 17), ((256, 256),)
    else:
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name()
        ms = (1, 16, 1024) if args.quick else (1, 2, 16, 64, 128, 1024, 4096)
        shapes = ((4096, 4096), (14336, 4096))
    timer = Timer(dev, mode="once" if args.smoke or args.warm_only else "time", max_time=0.05)  # ~50 ms per point
    copies = (lambda nbytes: copies_for(nbytes, dev, min_copies=4)) if timer.timing else (lambda nbytes: 1)
    rows, sweep_rows = [], []
    torch.manual_seed(0)
    for n, k in shapes:
        w = torch.randn(n, k, device=dev) * 0.02
        calib = torch.randn(64, k, device=dev)
        c_fp8 = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k))
        c_blk = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k))
        c_i8 = Int8ScaledMMLinearLayerConfig(False, True, True, (n, k))
        c_w4 = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
        cp8, cp4, cp16 = copies(n * k), copies(n * k // 2), copies(2 * n * k)
        p8, L8, K8 = make_layers(TritonFP8ScaledMMLinearKernel, c_fp8, w, cp8, calib)
        pb, LB, KB = make_layers(TritonFp8BlockScaledMMLinearKernel, c_blk, w, cp8, calib)
        pi, LI, KI = make_layers(TritonInt8ScaledMMLinearKernel, c_i8, w, cp8, calib)
        p4, L4, K4 = make_layers(TritonW4A16LinearKernel, c_w4, w, cp4, calib)
        wbf = [w.bfloat16().clone() for _ in range(cp16)]
        # the same FP8 layers with the small-M quantization choice forced each way
        K8fused, K8split = [copy.copy(x) for x in K8], [copy.copy(x) for x in K8]
        for a, b in zip(K8fused, K8split):
            a.fused_quant_max_m, b.fused_quant_max_m = 1 << 30, 0
        w8t = [L.weight for L in L8]  # [K, N] column-major views: what _scaled_mm wants as B
        ws_row = [L.weight_scale.reshape(1, n) for L in L8]
        for m in ms:
            x = (torch.randn(m, k, device=dev) * 1.0).bfloat16()
            xq, xs = Q.quant_fp8_per_token(x)
            out16 = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            ops = {
                "bf16 F.linear": (lambda i: F.linear(x, wbf[i]), cp16),
                "torch._scaled_mm rowwise (GEMM only)": (
                    lambda i: torch._scaled_mm(xq, w8t[i], scale_a=xs, scale_b=ws_row[i], out_dtype=torch.bfloat16), cp8),
                "triton fp8 quant only": (lambda i: Q.quant_fp8_per_token(x), 1),
                "triton fp8 GEMM only": (
                    lambda i: launch_scaled_mm(mm_kernels.scaled_mm_kernel, K8[i].tiles, xq, L8[i].weight.t(), out16, xs,
                                               L8[i].weight_scale, None, None, None, is_int8=False, a_mode=0,
                                               a_per_row=True, b_per_col=True, azp_mode=0), cp8),
                "triton fp8 per-token e2e": (lambda i: K8[i].apply_weights(L8[i], x), cp8),
                "triton int8 per-token e2e": (lambda i: KI[i].apply_weights(LI[i], x), cp8),
                "triton fp8 block e2e": (lambda i: KB[i].apply_weights(LB[i], x), cp8),
                "triton w4a16 g128": (lambda i: K4[i].apply_weights(L4[i], x), cp4),
            }
            if m <= 16:
                ops["triton fp8 e2e, quant fused in GEMM"] = (lambda i: K8fused[i].apply_weights(L8[i], x), cp8)
                ops["triton fp8 e2e, separate quant launch"] = (lambda i: K8split[i].apply_weights(L8[i], x), cp8)
            floor8 = (n * k + 2 * m * k + 2 * m * n) / HBM_BPS * 1e6
            floor4 = (n * k // 2 + 2 * n * (k // 128) + 2 * m * k + 2 * m * n) / HBM_BPS * 1e6
            errs = {
                "triton fp8 per-token e2e": rel_error(K8[0].apply_weights(L8[0], x), reference_linear(c_fp8, L8[0], x, dtype=torch.float32)),
                "triton w4a16 g128": rel_error(K4[0].apply_weights(L4[0], x), reference_linear(c_w4, p4, x, dtype=torch.float32)),
                "triton fp8 block e2e": rel_error(KB[0].apply_weights(LB[0], x), reference_linear(c_blk, pb, x, dtype=torch.float32)),
                "triton int8 per-token e2e": rel_error(KI[0].apply_weights(LI[0], x), reference_linear(c_i8, pi, x, dtype=torch.float32)),
            }
            for label, (fn, cp) in ops.items():
                try:
                    fn(0)
                    us = timer(fn, cp)
                    gus = timer(fn, cp, graph=True) if m <= 16 else None
                    err = None
                except Exception as e:  # noqa: BLE001 - one failing op must not hide the others' numbers
                    us = gus = None
                    err = f"{type(e).__name__}: {e}"[:200]
                rows.append(dict(n=n, k=k, m=m, op=label, median_us=us, graph_us=gus, copies=cp,
                                 floor_us=floor4 if "w4a16" in label else floor8, rel_err=errs.get(label), error=err))
                r = rows[-1]
                print(f"{n}x{k} M={m:5d} {label:38s} {us if us is None else round(us, 1)!s:>8} "
                      f"{'' if gus is None else round(gus, 1)!s:>8}  floor {r['floor_us']:.1f}"
                      + ("" if r["rel_err"] is None else f"  err {r['rel_err']:.3g}") + (f"  ERROR {err}" if err else ""),
                      flush=True)
        if args.sweep:
            sweep_rows.extend(sweep(timer, n, k, ms, dev, L8, K8, L4, K4, cp8, cp4, Q, launch_scaled_mm))
        del L8, LB, LI, L4, K8, KB, KI, K4, wbf
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if args.warm_only:
        print("warm-only: every op compiled")
        return 0
    meta = dict(device=name, torch=torch.__version__, triton=triton.__version__,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                method="qlinear.timing.time_calls median (do_bench; graph: CUDA-graph replay of the rotation), "
                       "weights rotated over copies > 2x L2")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench_triton.json")
    with open(path, "w") as f:
        json.dump(dict(meta=meta, rows=rows, sweep=sweep_rows), f, indent=1)
    print(f"\n# {name}, torch {torch.__version__}, triton {triton.__version__} — median µs (graph µs for M<=16)")
    ops = list(dict.fromkeys(r["op"] for r in rows))
    print("| N×K | M | " + " | ".join(ops) + " |")
    print("|---|---|" + "---|" * len(ops))
    for n, k in shapes:
        for m in ms:
            cells = []
            for label in ops:
                r = next((r for r in rows if r["n"] == n and r["m"] == m and r["op"] == label), None)
                if r is None:
                    cells.append("")
                elif r["median_us"] is None:
                    cells.append("err")
                else:
                    cells.append(f"{r['median_us']:.1f}" + (f" ({r['graph_us']:.1f})" if r["graph_us"] is not None else ""))
            print(f"| {n}×{k} | {m} | " + " | ".join(cells) + " |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
