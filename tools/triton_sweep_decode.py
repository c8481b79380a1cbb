"""The triton kernels' tile choices side by side on the GPU (decode first: the one-row GEMVs and the
small-M tiles; also large-M W8A8 tiles), against what a single launch can do at all on this card.

For each of W4A16 g128, FP8 per-token and INT8 per-token (end to end: activation quantization
included) at N x K = 4096 x 4096 and 14336 x 4096 it times the shipped tile and the CANDIDATES of
each M (tiles, and forced split-K counts) under CUDA-graph replay, rotating over enough weight
copies that every call streams its weight from HBM; each candidate's output is checked against the
reference first (relative error printed). Floors measured in the same run: an empty kernel
(launch-to-launch gap inside a graph), a one-launch stream read of the same bytes at several grid
sizes (the best is what a perfect GEMV could reach), and bf16 F.linear.

    python3 -m tools.triton_sweep_decode [--out DIR] [--only w4a16,fp8,int8] [--m 1,16,...]
                                         [--shipped-only | --no-floors | --floors-only]
    python3 -m tools.triton_sweep_decode --ncu KIND:M   # a few eager calls of one op, for `ncu`

Tiles and split counts are pinned through the kernels' public tuning hook (``pin_tile``); timing
is ``tools/harness.py``. Writes sweep_decode.json under --out and prints a table naming the card.
"""

from __future__ import annotations

import argparse
import copy
import json
import os

import torch
import torch.nn.functional as F

from .harness import Timer, copies_for, make_layers, rel_error

# Candidates per (kind, M): (tile, forced split count or None for the shipped rule). GEMV tiles
# (M <= 2) are 6-tuples (GemvTile: bm, bn, bk, programs per SM, warps, stages); tensor-core tiles
# ("t", bm, bn, bk, group_m, warps, stages).
CANDIDATES = {
    ("w4a16", 1): [(1, 128, 128, 8, 4, 1), (1, 64, 128, 16, 2, 1), (1, 64, 128, 8, 2, 1), (1, 64, 128, 32, 2, 1),
                   (1, 32, 128, 16, 1, 1),
                   # 8 weights a thread per slab instead of 16: ~96 registers instead of ~127-157 (sm_90
                   # compile), so more warps per SM (ncu: the shipped tile was register-limited to 25 %).
                   # H200: all slower (4096x4096 10.2-12.0 vs 8.5 us; 14336x4096 20.1-24.1 vs 18.4): fewer
                   # loads in flight per thread cost more than the extra warps gave
                   (1, 64, 128, 16, 4, 1), (1, 32, 128, 16, 2, 1), (1, 64, 128, 24, 4, 1), (1, 32, 128, 32, 2, 1),
                   (1, 128, 128, 8, 8, 1)],
    ("w4a16", 2): [(2, 64, 128, 8, 4, 1), (2, 64, 128, 16, 2, 1), (2, 64, 128, 16, 4, 1)],
    ("w8a8", 1): [(1, 8, 512, 2, 4, 1), (1, 16, 256, 2, 4, 1), (1, 32, 256, 2, 4, 1), (1, 8, 256, 2, 4, 1),
                  (1, 8, 512, 4, 4, 1)],
    ("w4a16", 16): [(("t", 16, 64, 128, 1, 4, 4), s) for s in (1, 2, 4, 8)] +
                   [(("t", 16, 64, 128, 1, 4, 3), s) for s in (4, 8)] +
                   [(("t", 16, 128, 128, 1, 4, 3), s) for s in (2, 4, 8)] + [(("t", 16, 128, 128, 1, 8, 3), 4)],
    ("w4a16", 32): [(("t", 32, 64, 128, 1, 4, 4), s) for s in (1, 2, 4, 8)] +
                   [(("t", 32, 64, 128, 1, 4, 3), s) for s in (2, 4)] + [(("t", 32, 32, 128, 1, 4, 4), s) for s in (2, 4)],
    ("w4a16", 64): [(("t", 64, 64, 128, 1, 4, 3), s) for s in (1, 2, 4, 8)] +
                   [(("t", 64, 128, 128, 1, 4, 3), s) for s in (1, 2, 4)] + [(("t", 32, 64, 128, 1, 4, 4), s) for s in (2, 4)],
    ("w8a8", 4096): [(("t", 128, 256, 128, 8, 8, 3), None), (("t", 128, 256, 128, 8, 8, 4), None),
                     (("t", 256, 128, 128, 8, 8, 3), None), (("t", 128, 256, 64, 8, 8, 4), None),
                     (("t", 128, 256, 128, 16, 8, 3), None), (("t", 128, 256, 128, 4, 8, 3), None),
                     (("t", 128, 128, 128, 8, 4, 4), None)],
    ("w8a8", 16): [(("t", 16, 32, 256, 1, 4, 4), s) for s in (1, 2, 4, 8)] +
                  [(("t", 16, 64, 256, 1, 4, 4), s) for s in (2, 4, 8)] +
                  [(("t", 16, 32, 128, 1, 4, 8), s) for s in (4, 8)],
}


def _floor_kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def empty_kernel(p):
        pass

    @triton.jit
    def stream_kernel(src, dst, words_per_prog, BLOCK: tl.constexpr):
        """Sum a contiguous chunk of int32 words (BLOCK per step, next step's load issued before
        this one's add) and store one word per program: the cost of reading the bytes in one launch."""
        base = src + tl.program_id(0).to(tl.int64) * words_per_prog
        r = tl.arange(0, BLOCK)
        acc = tl.zeros((BLOCK,), dtype=tl.int32)
        nxt = tl.load(base + r)
        for off in range(0, words_per_prog, BLOCK):
            cur = nxt
            nxt = tl.load(base + off + BLOCK + r, mask=off + BLOCK < words_per_prog, other=0)
            acc += cur
        tl.store(dst + tl.program_id(0), tl.sum(acc, axis=0))

    return empty_kernel, stream_kernel


def floors(timer, nbytes_list, dev):
    empty, stream = _floor_kernels()
    res = {}
    buf = torch.zeros(1, dtype=torch.int32, device=dev)
    res["empty kernel"] = timer(lambda i: empty[(1,)](buf), 64, graph=True)
    for nbytes in nbytes_list:
        words = nbytes // 4
        cp = copies_for(nbytes, dev, min_copies=4)
        srcs = [torch.randint(-2**31, 2**31 - 1, (words,), dtype=torch.int32, device=dev) for _ in range(cp)]
        best = None
        for progs in (132, 264, 528, 1056, 2112):
            for block, warps in ((1024, 4), (2048, 8)):
                per = -(-words // progs)
                per = -(-per // block) * block
                progs_eff = -(-words // per)
                if progs_eff * per > words:  # keep every program in bounds: trim the tail
                    progs_eff = words // per
                if progs_eff == 0:
                    continue
                dst = torch.empty(progs_eff, dtype=torch.int32, device=dev)
                us = timer(lambda i, p=progs_eff, pw=per, b=block, w=warps: stream[(p,)](
                    srcs[i], dst, pw, BLOCK=b, num_warps=w), cp, graph=True)
                us *= words / (progs_eff * per)  # scale a trimmed read to the full size
                key = f"stream {nbytes / 2**20:.1f} MiB"
                res.setdefault(key + " by grid", {})[f"{progs_eff}x{per}w/{warps}"] = round(us, 2)
                best = us if best is None else min(best, us)
        res[f"stream {nbytes / 2**20:.1f} MiB best"] = round(best, 2)
    return res


def build(kind, n, k, dev, copies):
    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
    from qlinear.scalar_type import scalar_types

    if kind in ("w4a16", "marlin"):
        if kind == "marlin":
            from qlinear_marlin.mp import MarlinMPLinearKernel as cls
        else:
            from qlinear_triton.mp import TritonW4A16LinearKernel as cls
        cfg = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
    elif kind == "fp8":
        from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel as cls
        cfg = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k))
    else:
        from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel as cls
        cfg = Int8ScaledMMLinearLayerConfig(False, True, True, (n, k))
    w = torch.randn(n, k, device=dev) * 0.02
    return (cfg, *make_layers(cls, cfg, w, copies, torch.randn(64, k, device=dev)))


def pinned(kern, cand):
    """A copy of ``kern`` with the candidate's tile and split count pinned (None: the shipped choice)."""
    if cand is None:
        return kern
    from qlinear_triton.configs import GemvTile, Tile

    tile, splits = cand if isinstance(cand[0], tuple) else (cand, None)
    return copy.copy(kern).pin_tile(Tile(*tile[1:]) if tile[0] == "t" else GemvTile(*tile), splits)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--only", default="w4a16,fp8,int8", help="comma list of w4a16, fp8, int8")
    ap.add_argument("--shipped-only", action="store_true", help="time only the shipped tiles (no alternatives, no floors)")
    ap.add_argument("--ncu", metavar="KIND:M", help="no timing: build KIND (w4a16, fp8, int8, marlin) at 4096 x 4096 "
                    "and call it 20 times with M rows, for a profiler to pick a call")
    ap.add_argument("--no-floors", action="store_true", help="skip the floor measurements")
    ap.add_argument("--floors-only", action="store_true", help="only the floor measurements")
    ap.add_argument("--m", default=None, help="comma list of M to time (default: 1, 2, 16 for W4A16; 1, 16 for W8A8)")
    ap.add_argument("--label", default="", help="a tag stored with the results (e.g. which code was timed)")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU check of this script: one small shape through the Triton interpreter, no timing")
    args = ap.parse_args(argv)
    from qlinear.formats import reference_linear

    dev = torch.device("cpu" if args.smoke else "cuda")
    shapes = ((256, 512),) if args.smoke else ((4096, 4096), (14336, 4096))
    timer = Timer(dev, mode="once" if args.smoke else "time", max_time=0.05)  # ~50 ms per point
    torch.manual_seed(0)
    if args.ncu:
        kind, m = (args.ncu.split(":") + ["1"])[:2]
        cfg, params, layers, kerns = build(kind, 4096, 4096, dev, 1)
        x = torch.randn(int(m), 4096, device=dev).bfloat16()
        for _ in range(20):
            kerns[0].apply_weights(layers[0], x)
        torch.cuda.synchronize()
        return 0
    card = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name()
    import triton
    print(f"{card} | torch {torch.__version__} | triton {triton.__version__} | {args.label}", flush=True)
    rows = []
    kinds = [] if args.floors_only else args.only.split(",")
    for n, k in shapes:
        for kind in kinds:
            wbytes = n * k // 2 if kind == "w4a16" else n * k
            cp = copies_for(wbytes, dev, min_copies=4) if timer.timing else 1
            cfg, params, layers, kerns = build(kind, n, k, dev, cp)
            family = "w4a16" if kind == "w4a16" else "w8a8"
            ms = (1, 2, 16) if kind == "w4a16" else (1, 16)
            if args.m:
                ms = [m for m in map(int, args.m.split(",")) if (family, m) in CANDIDATES]
            for m in ms:
                x = torch.randn(m, k, device=dev).bfloat16()
                ref = reference_linear(cfg, params, x, dtype=torch.float32)
                cands = [None] if args.shipped_only else [None] + CANDIDATES[(family, m)]
                if args.smoke:
                    cands = cands[:3]
                for cand in cands:
                    t, splits = cand if isinstance(cand, tuple) and isinstance(cand[0], tuple) else (cand, None)
                    try:
                        ks = [pinned(kk, cand) for kk in kerns]
                        err = rel_error(ks[0].apply_weights(layers[0], x), ref)
                        us = timer(lambda i, ks=ks: ks[i].apply_weights(layers[i], x), cp, graph=True)
                        note = None
                    except Exception as e:  # noqa: BLE001 - a tile that fails is a data point, not the end
                        us, err, note = None, None, f"{type(e).__name__}: {e}"[:200]
                    rows.append(dict(kind=kind, n=n, k=k, m=m, tile=t or "shipped", splits=splits, graph_us=us,
                                     rel_err=err, error=note, label=args.label))
                    tag = "shipped" if t is None else str(t) + (f" split {splits}" if splits else "")
                    print(f"{kind:6s} {n:5d}x{k} M={m} {tag:44s} " +
                          (f"{us:7.2f} us  rel.err {err:.2e}" if us is not None else f"FAILED {note}"), flush=True)
    res = {"card": card, "label": args.label, "rows": rows}
    if not (args.shipped_only or args.smoke or args.no_floors):
        res["floors"] = floors(timer, sorted({n * k // d for n, k in shapes for d in (1, 2)}), dev)  # FP8, W4A16 bytes
        for n, k in shapes:
            wb = [torch.randn(n, k, device=dev).bfloat16() for _ in range(copies_for(2 * n * k, dev, min_copies=4))]
            x = torch.randn(1, k, device=dev).bfloat16()
            res["floors"][f"bf16 F.linear {n}x{k} M=1"] = round(timer(lambda i: F.linear(x, wb[i]), len(wb), graph=True), 2)
        for a, b in res["floors"].items():
            print(f"floor {a}: {b}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    name = "sweep_decode" + (f"_{args.label}" if args.label else "") + ".json"
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
