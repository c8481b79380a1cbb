"""Sweep the marlin decode kernel (csrc/mp_decode.cuh) against the tile kernel, the triton W4A16
kernel and bf16 ``F.linear`` on the Llama-3-8B layer shapes, M = 1..16 (GPU only), and the decode
kernel at every K split count (M = 1), to check the launcher's split choice.

    python3 -m tools.marlin_decode_sweep [--out sweep.json] [--ms 1,2,4,8,16] [--splits 1,2,4,8,16]

Per (shape, M): CUDA-graph time per call over rotated layer copies (no L2 reuse) of bf16, the triton
kernel, the marlin tile kernel and the decode kernel with the launcher's split choice (also without
programmatic dependent launch, and with 4 and 8 warps per block instead of the launcher's rule); at M = 1 also
the decode kernel at every --splits. Relative error of every path against the float64 reference.
JSON to --out, table to stdout.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from qlinear.decode_step import MODELS

from .harness import Timer, gptq_g128_shapes, rel_error


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="marlin_decode_sweep.json")
    ap.add_argument("--ms", default="1,2,4,8,16")
    ap.add_argument("--splits", default="1,2,4,8,16", help="K slices tried at M=1")
    args = ap.parse_args()
    ms = [int(v) for v in args.ms.split(",")]
    split_list = [int(v) for v in args.splits.split(",") if v]
    from qlinear_marlin import runtime
    from qlinear_marlin.mp import MarlinMPLinearKernel

    try:
        from qlinear_triton.mp import TritonW4A16LinearKernel
    except ImportError:  # triton provider not installed: its column stays empty
        TritonW4A16LinearKernel = None
    dev = torch.device("cuda")
    card = torch.cuda.get_device_name()
    timer = Timer(dev, max_time=0.05)
    rows = []
    for name, n, k, copies, made, ref_w, bf in gptq_g128_shapes((MarlinMPLinearKernel, TritonW4A16LinearKernel), dev,
                                                                 MODELS["llama3-8b"]):
        mlayers, mkerns = made[MarlinMPLinearKernel]
        tlayers, tkerns = made.get(TritonW4A16LinearKernel, (None, None))
        gen = torch.Generator(device=dev).manual_seed(1)
        kern = mkerns[0]
        for m in ms:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen)
            ref = (x.double() @ ref_w.t()).float()

            def marlin(decode, splits=0, **kw):
                def call(i):
                    L = mlayers[i]
                    return runtime.run(x, n, getattr(L, kern.w_q_name), getattr(L, kern.w_s_name), group_k=L.qlinear_marlin_group_k,
                                       fmt=runtime.INT_CODES, decode=decode, splits=splits, **kw)
                return call

            # decode: with PDL (the default) and without, for the A/B
            paths = {"bf16": lambda i: F.linear(x, bf[i % len(bf)]), "tile": marlin(0), "decode": marlin(1),
                     "decode_nopdl": marlin(1, pdl=False), "decode_w4": marlin(1, warps=4), "decode_w8": marlin(1, warps=8),
                     "decode_streamk": marlin(1, streamk=True)}
            if tkerns is not None:
                paths["triton"] = lambda i: tkerns[i].apply_weights(tlayers[i], x)
            r = dict(shape=name, n=n, k=k, m=m, copies=copies)
            for p, fn in paths.items():
                out = fn(0)
                r[p + "_err"] = None if p == "bf16" else rel_error(out, ref)
                r[p + "_us"] = timer(fn, copies if p != "bf16" else len(bf), graph=True)
            if m == 1:
                for s in split_list:
                    fn = marlin(1, s)
                    r[f"s{s}_us"] = timer(fn, copies, graph=True)
                    r[f"s{s}_err"] = rel_error(fn(0), ref)
            rows.append(r)
            us = "  ".join(f"{p} {r[p + '_us']:.1f}" for p in paths)
            print(f"{name:8s} M={m:<3d} {us}  (decode err {r['decode_err']:.1e})", flush=True)
        del mlayers, mkerns, tlayers, tkerns
    with open(args.out, "w") as f:
        json.dump(dict(card=card, torch=torch.__version__, kernel_default=dict(decode_max_m=runtime.DECODE_MAX_M),
                       rows=rows), f, indent=1)
    print(f"\nW4A16 g128 bf16 on {card}: graph us per call; decode kernel's speedup over bf16 and triton")
    for r in rows:
        extra = ""
        if r["m"] == 1:
            extra = " | splits " + " ".join(f"{s}:{r[f's{s}_us']:.1f}" for s in split_list)
        tri = r.get("triton_us")
        print(f"{r['shape']:8s} M={r['m']:<3d} bf16 {r['bf16_us']:7.1f} triton {tri or 0:7.1f} tile {r['tile_us']:7.1f} "
              f"decode {r['decode_us']:7.1f} -> {r['bf16_us'] / r['decode_us']:4.2f}x bf16, "
              f"{(tri or 0) / r['decode_us']:4.2f}x triton{extra}")


if __name__ == "__main__":
    main()
