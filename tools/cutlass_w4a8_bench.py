"""Side-by-side timing of the W4A8 GEMM on one GPU (CUDA graphs), printed as a compact table.

Per (layer N x K, M): bf16 ``F.linear`` (cuBLAS) against the cutlass W4A8 layer (int4 weights, group
128, the per-token FP8 quantization of x included), the cutlass FP8 W8A8 layer (per-channel weights,
per-token activations, quantization included) and the cutlass W4A16 GPTQ g128 layer; then the W4A8
layer with each tile forced (``QLINEAR_CUTLASS_W4A8_TILE``), the data for its M buckets. Timing and
weight rotation as in ``tools.cutlass_w4a16_bench``; each kernel's output on one x is compared with
``F.linear`` on its dequantized weight first. Writes JSON with --out.

    python -m tools.cutlass_w4a8_bench [--shapes 6144x4096,...] [--m 1,16,...] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import os
import traceback

import torch
import torch.nn.functional as F

from qlinear import quant_key as qk
from qlinear import timing
from qlinear.config import FP8ScaledMMLinearLayerConfig, MPLinearLayerConfig, W4A8LinearLayerConfig
from qlinear.families import family_of
from qlinear.scalar_type import scalar_types

from .cutlass_w4a16_bench import CALLS, SHAPES, TILES, kernel_cls, make_timer
from .harness import copies_for

MS = "1,16,128,512,1024,2048,4096"
KINDS = [  # (column, config maker, family, class name)
    ("w4a8", lambda n, k: W4A8LinearLayerConfig((n, k), 128), "w4a8", "CutlassW4A8LinearKernel"),
    ("fp8", lambda n, k: FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k)), "fp8",
     "CutlassFP8ScaledMMLinearKernel"),
    ("w4a16", lambda n, k: MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False), "mp",
     "CutlassW4A16LinearKernel"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--m", default=MS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--kinds", default="w4a8,fp8,w4a16",
                    help="cutlass layers beside bf16 (each builds its extension on first use: fp8 and w4a16 take minutes)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the per-tile sweep of the W4A8 layers")
    ap.add_argument("--smoke", action="store_true", help="CPU: run each step once, time nothing (checks the script)")
    args = ap.parse_args()
    graph_us = make_timer(args.smoke)
    dev = torch.device("cpu" if args.smoke else "cuda")
    name = "cpu smoke run" if args.smoke else torch.cuda.get_device_name()
    print(f"# {name} | torch {torch.__version__} | bf16 activations | CUDA graphs, {CALLS} calls/replay, median us per call "
          "and speed-up over bf16 F.linear (cutlass layers, activation quantization included)")
    kinds = [kd for kd in KINDS if kd[0] in args.kinds.split(",")]
    cols = ["bf16"] + [c for c, *_ in kinds]
    results, skipped = [], {}

    def save():
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"device": name, "torch": torch.__version__, "unit": "us",
                           "method": f"CUDA graph of {CALLS} calls, median of replays", "skipped": skipped, "rows": results}, f, indent=1)

    print(f"{'N x K':>11} {'M':>5} " + " ".join(f"{c:>13}" for c in cols))
    for shape in args.shapes.split(","):
        n, k = map(int, shape.split("x"))
        copies = copies_for(n * k // 2, dev, min_copies=2, max_copies=8)
        g = torch.Generator().manual_seed(0)
        weights = [(torch.randn(n, k, generator=g) * 0.02).to(dev) for _ in range(copies)]
        w16 = [w.to(torch.bfloat16) for w in weights]
        prepared, errs = {}, []
        xe = torch.randn(97, k, device=dev, dtype=torch.bfloat16)
        for col, mk, fam, cls_name in kinds:
            kc, c = kernel_cls("cutlass", cls_name, fam), mk(n, k)
            if kc is None:
                skipped[col] = "cutlass not installed"
                continue
            (ok, why), (ok2, why2) = kc.is_supported(), kc.can_implement(c)
            if not (ok and ok2):
                skipped[col] = why or why2
                continue
            try:
                params = timing.quantize_copies(c, weights, None)
                prepared[col] = p = timing.prepare_kernel(kc, c, params, dev)
            except Exception as e:  # noqa: BLE001 - a kernel that fails to build is reported, not fatal
                skipped[col] = f"{type(e).__name__}: {str(e)[:200]}"
                traceback.print_exc(limit=2)
                continue
            deq = family_of(c).dequantize_weight(c, params[0].get, torch.float32)
            ref = F.linear(xe.float(), deq.to(dev))
            out = p.kernels[0].apply_weights(p.layers[0], xe).float()
            errs.append(f"{col} {float((out - ref).norm() / ref.norm()):.1e}")
        print(f"# {shape} relative error vs F.linear(dequantized W), M=97: " + ", ".join(errs), flush=True)
        for m in map(int, args.m.split(",")):
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            row = {"n": n, "k": k, "m": m, "bf16": graph_us(lambda j: F.linear(x, w16[j % copies]))}
            for col, p in prepared.items():
                row[col] = graph_us(lambda j, p=p: p.kernels[j % copies].apply_weights(p.layers[j % copies], x))
            p = prepared.get("w4a8")
            if p is not None and not args.no_sweep:
                row["sweep-w4a8"] = {}
                for t in TILES:
                    os.environ["QLINEAR_CUTLASS_W4A8_TILE"] = t
                    try:
                        row["sweep-w4a8"][t] = graph_us(lambda j, p=p: p.kernels[j % copies].apply_weights(p.layers[j % copies], x), reps=8)
                    finally:
                        del os.environ["QLINEAR_CUTLASS_W4A8_TILE"]
            results.append(row)
            cells = [f"{'-':>13}" if row.get(c) is None else f"{row[c]:7.1f} {row['bf16'] / row[c]:4.2f}x" for c in cols]
            sweep = " ".join(f"{t}={v:.1f}" for t, v in row.get("sweep-w4a8", {}).items())
            print(f"{shape:>11} {m:>5} " + " ".join(cells) + (f"   w4a8 tiles: {sweep}" if sweep else ""), flush=True)
        del prepared, weights, w16
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        save()
    for col, why in skipped.items():
        print(f"# {col}: left out ({why})")
    print("\n# summary: speed-up over bf16 per M, geometric mean over shapes")
    for m in sorted({r["m"] for r in results}):
        rows = [r for r in results if r["m"] == m]
        cells = []
        for col in cols[1:]:
            vals = [r["bf16"] / r[col] for r in rows if r.get(col)]
            cells.append(f"{col} {torch.tensor(vals).log().mean().exp().item():.2f}x" if vals else f"{col} -")
        print(f"M={m:>5}: " + " | ".join(cells))
    save()


if __name__ == "__main__":
    main()
