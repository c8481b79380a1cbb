"""Sweep the cutlass provider's W4A16 decode kernel (csrc/w4a16_decode.cuh) against its own mixed-input
GEMM on the same weight, marlin's decode kernel and bf16 ``F.linear`` on the Llama-3-8B layer shapes,
M = 1..16 (GPU only), and the decode kernel at forced K splits (M = 1), to check the launcher's choices.

    python3 -m tools.cutlass_w4a16_decode_sweep [--out sweep.json] [--ms 1,4,8,16] [--splits 1,2,3,4,6,8] [--bits 8]
    python3 -m tools.cutlass_w4a16_decode_sweep --build build/dec_variants [--include-first DIR --name NAME]
    python3 -m tools.cutlass_w4a16_decode_sweep --lib build/dec_variants [--out variants.json]

``--build DIR``: compile the kernel as standalone libraries (``tools/cutlass_tiles/w4a16_decode_variant.cu``:
nvcc only, no torch, seconds; on any machine with nvcc), one per warps choice (0 = the launcher's rule, 4, 8);
``--include-first DIR`` builds a variant from a changed copy of ``w4a16_decode.cuh`` in DIR instead, as
NAME. ``--lib DIR`` (on the GPU, the folder carried there): each library checked against F.linear on the
dequantized weight at M = 1, 5, 16, then timed beside bf16 (no extension built).

``--bits 8``: the same on W8A16 (uint8b128 g128 through ``CutlassW8A16LinearKernel``).

``--format nvfp4|mxfp4|mxfp8``: the float-code decode kernel (csrc/float_decode.cuh) of the weight-only
NVFP4 / MXFP4 / MXFP8 kernels against their GEMM, marlin's kernel of the format and bf16, bf16
activations; the decode kernel also with its knobs pinned (4 / 8 warps, 1 / 2 row blocks, no PDL).

Per (shape, M): CUDA-graph time per call over rotated layer copies (no L2 reuse) of bf16, marlin (its
decode kernel, when the marlin provider is installed), the cutlass GEMM (its M <= 16 tile) and the
decode kernel with the launcher's choices, without PDL, and with 4 / 8 warps per block. Relative error
of every path against the float64 reference. JSON to --out, table to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from qlinear.decode_step import MODELS

from .harness import Timer, copies_for, gptq_g128_shapes, rel_error


VARIANT_SOURCE = Path(__file__).parent / "cutlass_tiles" / "w4a16_decode_variant.cu"


def variant_command(out: Path, warps: int = 0, include_first: str | None = None, bits: int = 4, fp16: bool = False,
                    rows: int = 0, cluster: bool = True) -> list[str]:
    """The nvcc command building one standalone library of the decode kernel (``bits``-bit codes, bf16 or
    fp16 activations, ``rows`` 8-row blocks of x a block, 0 = the launcher's rule, ``cluster`` False: K
    slices always added through the workspace); ``--lib`` reads the code width and dtype back from the
    name (``-w8``, ``-fp16``)."""
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.build import CSRC, GENCODE

    nvcc = find_nvcc()
    if nvcc is None:
        raise SystemExit("nvcc not found")
    inc = [f"-I{include_first}"] if include_first else []
    return [nvcc, "-O3", "-std=c++17", GENCODE, "-Xcompiler", "-fPIC", "-shared", *inc, f"-I{CSRC}", f"-DQLC_WARPS={warps}",
            f"-DQLC_FP16={int(fp16)}", f"-DQLC_BITS={bits}", f"-DQLC_ROWS={rows}", f"-DQLC_NO_CLUSTER={int(not cluster)}",
            str(VARIANT_SOURCE), "-o", str(out)]


def lib_kind(stem: str) -> tuple[int, "torch.dtype"]:
    """(code width, activation dtype) of a variant library from its name."""
    return (8 if "-w8" in stem else 4), (torch.float16 if "-fp16" in stem else torch.bfloat16)


def build_libs(out_dir: str, include_first: str | None, name: str | None) -> None:
    import subprocess

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # "-rows1": M 9..16 as two 8-row blocks per column tile (the kernel before one block took all 16 rows);
    # "-nocluster": K slices added through the workspace only (before the cluster reduction)
    todo = [(name or "variant", 0)] if include_first else [("shipped", 0), ("shipped-rows1", 0), ("shipped-nocluster", 0),
                                                            ("warps4", 4), ("warps8", 8), ("shipped-w8", 0), ("shipped-w8-rows1", 0),
                                                            ("shipped-w8-nocluster", 0), ("shipped-w8-fp16", 0)]
    for stem, warps in todo:
        bits, dt = lib_kind(stem)
        rows = 1 if "-rows1" in stem else 0
        subprocess.run(variant_command(out / f"{stem}.so", warps, include_first, bits, dt == torch.float16, rows,
                                       "-nocluster" not in stem), check=True)
        print(f"built {out / stem}.so", flush=True)


def run_libs(lib_dir: str, ms: list[int], out_path: str) -> None:
    """Each standalone variant in ``lib_dir``: checked, then timed beside bf16 on the Llama-3-8B shapes."""
    from qlinear import timing
    from qlinear.formats.int_pack import pack_along
    from qlinear_cutlass.w4a16_layout import scale_table, weight_int4

    from .cutlass_w4a16_tiles import CALLS, Tile

    libs = [Tile(p) for p in sorted(Path(lib_dir).glob("*.so"))]
    if not libs:
        raise SystemExit(f"no variant libraries in {lib_dir}")
    dev = torch.device("cuda")
    card = torch.cuda.get_device_name()
    rows, failed = [], {}
    for name, (n, k) in MODELS["llama3-8b"].items():
        copies = copies_for(n * k // 2, dev, min_copies=2, max_copies=16)
        gen = torch.Generator(device=dev).manual_seed(0)
        scales = torch.rand(n, k // 128, device=dev, generator=gen) * 0.01 + 0.001
        data = {}  # (bits, dtype) -> (rotated weights, rotated scale tables, the dequantized reference)
        for bits, dt in sorted({lib_kind(t.name) for t in libs}, key=str):
            codes = torch.randint(0, 1 << bits, (n, k), device=dev, generator=gen, dtype=torch.int32)
            w_ref = (codes - (1 << (bits - 1))).float() * scales.repeat_interleave(128, 1)
            w_q, s_t = weight_int4(pack_along(codes, bits, 1), bits=bits), scale_table(scales, dt)
            data[bits, dt] = ([w_q] + [w_q.clone() for _ in range(copies - 1)], [s_t] + [s_t.clone() for _ in range(copies - 1)], w_ref)
        bf = [w_ref.to(torch.bfloat16) for _ in range(copies)]

        def prepared(t, out, x):
            wq, st, _ = data[lib_kind(t.name)]
            t.prepare(out, x, wq[0], st[0], 128)
            t.workspace.zero_()  # the tile counters start at zero; the kernel leaves them so
            return t, wq, st

        ok = []
        for t in libs:
            dt = lib_kind(t.name)[1]
            try:
                for m in (1, 5, 16):
                    x = torch.randn(m, k, device=dev, dtype=dt, generator=gen)
                    out = torch.empty(m, n, device=dev, dtype=dt)
                    tt, wq, st = prepared(t, out, x)
                    got = tt(out, x, wq[0], st[0], 128).float()
                    err = rel_error(got, F.linear(x.float(), data[lib_kind(t.name)][2]))
                    if not err < 1e-2:
                        raise RuntimeError(f"M={m}: relative error {err:.2e} against F.linear on the dequantized weight")
                ok.append(t)
            except Exception as e:  # noqa: BLE001 - a variant that fails is reported and left out
                failed[f"{t.name} {name}"] = str(e)[:300]
                print(f"# {t.name} on {name}: {e}", flush=True)
        for m in ms:
            x16 = {dt: torch.randn(m, k, device=dev, dtype=dt, generator=gen) for dt in (torch.bfloat16, torch.float16)}
            x = x16[torch.bfloat16]
            r = {"shape": name, "n": n, "k": k, "m": m,
                 "bf16": timing.graph_us(lambda j: F.linear(x, bf[j % copies]), calls=CALLS, reps=15)}
            for t in ok:
                dt = lib_kind(t.name)[1]
                out = torch.empty(m, n, device=dev, dtype=dt)
                tt, wq, st = prepared(t, out, x16[dt])
                r[t.name] = timing.graph_us(lambda j, t=t, out=out, xx=x16[dt], wq=wq, st=st: t(out, xx, wq[j % copies], st[j % copies], 128),
                                            calls=CALLS, reps=15)
            rows.append(r)
            print(f"{name:8s} M={m:<3d} " + "  ".join(f"{c} {v:.1f}" for c, v in r.items() if isinstance(v, float)), flush=True)
        del data, bf
        torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        json.dump({"card": card, "torch": torch.__version__, "unit": "us (CUDA graph, per call)", "failed": failed, "rows": rows}, f, indent=1)


FLOAT_FORMATS = ("nvfp4", "mxfp4", "mxfp8")


def float_sweep(fmt: str, ms: list[int], out_path: str) -> None:
    """The float-code decode kernel of ``fmt`` against its GEMM, marlin and bf16 on the Llama-3-8B shapes."""
    from qlinear.config import MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig
    from qlinear_cutlass import float_weights as fw

    from .harness import make_layers

    config, cutlass = {"nvfp4": (NvFp4LinearLayerConfig, fw.CutlassNvFp4WeightOnlyLinearKernel),
                       "mxfp4": (MxFp4LinearLayerConfig, fw.CutlassMxFp4WeightOnlyLinearKernel),
                       "mxfp8": (Mxfp8LinearLayerConfig, fw.CutlassMxfp8WeightOnlyLinearKernel)}[fmt]
    try:
        from qlinear_marlin import fp as marlin_fp
        marlin = {"nvfp4": marlin_fp.MarlinNvFp4LinearKernel, "mxfp4": marlin_fp.MarlinMxFp4LinearKernel,
                  "mxfp8": marlin_fp.MarlinMxfp8LinearKernel}[fmt]
    except ImportError:  # marlin provider not installed: its column stays empty
        marlin = None
    dev = torch.device("cuda")
    card = torch.cuda.get_device_name()
    timer = Timer(dev, max_time=0.05)
    rows = []
    for name, (n, k) in MODELS["llama3-8b"].items():
        c = config((n, k))
        gen = torch.Generator(device=dev).manual_seed(0)
        w = torch.randn(n, k, device=dev, generator=gen) * 0.05
        copies = copies_for(n * k * (8 if fmt == "mxfp8" else 4) // 8 * 5 // 4, dev)
        calib = torch.randn(64, k, device=dev, generator=gen)  # NVFP4's static input scale wants sample activations
        _, layers, kerns = make_layers(cutlass, c, w, copies, calib)
        mlayers = mkerns = None
        if marlin is not None and marlin.can_implement(c)[0]:
            _, mlayers, mkerns = make_layers(marlin, c, w, copies, calib)
        bf = [w.to(torch.bfloat16).clone() for _ in range(copies_for(2 * n * k, dev))]
        del w
        kern = kerns[0]
        for m in ms:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen)

            def decode(splits=0, warps=0, pdl=None, nrows=0):
                def call(i):
                    out = torch.empty(m, n, dtype=x.dtype, device=dev)
                    kerns[i].run_decode(out, x, layers[i], None, splits, warps, pdl, nrows)
                    return out
                return call

            def gemm(i):
                kr = kerns[i]
                keep, kr._decode_max_m = kr._decode_max_m, 0
                try:
                    return kr.apply_weights(layers[i], x)
                finally:
                    kr._decode_max_m = keep

            paths = {"bf16": lambda i: F.linear(x, bf[i % len(bf)]), "gemm": gemm, "decode": decode(),
                     "decode_nopdl": decode(pdl=False), "decode_w4": decode(warps=4), "decode_w8": decode(warps=8),
                     "decode_r1": decode(nrows=1), "decode_r2": decode(nrows=2)}
            if mkerns is not None:
                paths["marlin"] = lambda i: mkerns[i].apply_weights(mlayers[i], x)
            ref = gemm(0).float()
            r = dict(shape=name, n=n, k=k, m=m, copies=copies, rule_max_m=kern._decode_max_m)
            for p, fn in paths.items():
                r[p + "_err"] = None if p == "bf16" else rel_error(fn(0), ref)
                r[p + "_us"] = timer(fn, copies if p != "bf16" else len(bf), graph=True)
            rows.append(r)
            print(f"{name:8s} M={m:<3d} " + "  ".join(f"{p} {r[p + '_us']:.1f}" for p in paths) +
                  f"  (decode vs gemm {r['decode_err']:.1e})", flush=True)
        del layers, kerns, mlayers, mkerns, bf
        torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        json.dump(dict(card=card, torch=torch.__version__, format=fmt, unit="us (CUDA graph, per call)", rows=rows), f, indent=1)
    print(f"\n{fmt} weight-only bf16 on {card}: graph us per call; the decode kernel's speedup over bf16, the GEMM and marlin")
    for r in rows:
        mar = r.get("marlin_us") or 0.0
        print(f"{r['shape']:8s} M={r['m']:<3d} bf16 {r['bf16_us']:6.1f} marlin {mar:6.1f} gemm {r['gemm_us']:6.1f} "
              f"decode {r['decode_us']:6.1f} (r1 {r['decode_r1_us']:.1f} r2 {r['decode_r2_us']:.1f}) -> "
              f"{r['bf16_us'] / r['decode_us']:4.2f}x bf16, {r['gemm_us'] / r['decode_us']:4.2f}x gemm, "
              f"{mar / r['decode_us']:4.2f}x marlin")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="cutlass_w4a16_decode_sweep.json")
    ap.add_argument("--ms", default="1,4,8,16")
    ap.add_argument("--splits", default="1,2,3,4,6,8", help="K slices tried at M=1")
    ap.add_argument("--lib", default=None, help="a folder of standalone variant libraries to check and time instead")
    ap.add_argument("--build", default=None, help="compile standalone libraries of the kernel into this folder (no GPU)")
    ap.add_argument("--include-first", default=None, help="--build: a folder holding a changed w4a16_decode.cuh")
    ap.add_argument("--name", default=None, help="--build --include-first: the variant's file name")
    ap.add_argument("--bits", type=int, default=4, choices=(4, 8), help="code width: W4A16 (uint4b8) or W8A16 (uint8b128)")
    ap.add_argument("--format", default=None, choices=FLOAT_FORMATS, help="the float-code decode kernel of this format instead")
    args = ap.parse_args()
    ms = [int(v) for v in args.ms.split(",")]
    if args.format:
        return float_sweep(args.format, ms, args.out)
    if args.build:
        return build_libs(args.build, args.include_first, args.name)
    if args.lib:
        return run_libs(args.lib, ms, args.out)
    split_list = [int(v) for v in args.splits.split(",") if v]
    from qlinear_cutlass import configs
    from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel, CutlassW8A16LinearKernel, decode_workspace

    try:
        from qlinear_marlin.mp import MarlinMPLinearKernel
    except ImportError:  # marlin provider not installed: its column stays empty
        MarlinMPLinearKernel = None
    dev = torch.device("cuda")
    card = torch.cuda.get_device_name()
    timer = Timer(dev, max_time=0.05)
    rows = []
    cutlass = CutlassW4A16LinearKernel if args.bits == 4 else CutlassW8A16LinearKernel
    for name, n, k, copies, made, ref_w, bf in gptq_g128_shapes((cutlass, MarlinMPLinearKernel), dev, MODELS["llama3-8b"],
                                                                args.bits):
        layers, kerns = made[cutlass]
        mlayers, mkerns = made.get(MarlinMPLinearKernel, (None, None))
        gen = torch.Generator(device=dev).manual_seed(1)
        kern = kerns[0]
        for m in ms:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen)
            ref = (x.double() @ ref_w.t()).float()
            ws, cnt = decode_workspace(dev, 64 * m * n, 2 * n // configs.DECODE_TILE_N)

            def decode(splits=0, warps=0, pdl=True):
                def call(i):
                    L = layers[i]
                    out = torch.empty(m, n, dtype=x.dtype, device=dev)
                    kern._decode(out, x, L.weight_packed, L.weight_scale, None, None, ws, cnt, 128, splits, warps, pdl)
                    return out
                return call

            def gemm(i):
                L = layers[i]
                out = torch.empty(m, n, dtype=x.dtype, device=dev)
                kern._mm(out, x, L.weight_packed, L.weight_scale, None, None, 128, configs.w4a16_tile_for(m, n))
                return out

            paths = {"bf16": lambda i: F.linear(x, bf[i % len(bf)]), "gemm": gemm, "decode": decode(),
                     "decode_nopdl": decode(pdl=False), "decode_w4": decode(warps=4), "decode_w8": decode(warps=8)}
            if mkerns is not None:
                paths["marlin"] = lambda i: mkerns[i].apply_weights(mlayers[i], x)
            r = dict(shape=name, n=n, k=k, m=m, copies=copies)
            for p, fn in paths.items():
                r[p + "_err"] = None if p == "bf16" else rel_error(fn(0), ref)
                r[p + "_us"] = timer(fn, copies if p != "bf16" else len(bf), graph=True)
            if m == 1:
                for s in split_list:
                    r[f"s{s}_us"] = timer(decode(s), copies, graph=True)
            rows.append(r)
            us = "  ".join(f"{p} {r[p + '_us']:.1f}" for p in paths)
            print(f"{name:8s} M={m:<3d} {us}  (decode err {r['decode_err']:.1e})", flush=True)
        del layers, kerns, mlayers, mkerns
    with open(args.out, "w") as f:
        json.dump(dict(card=card, torch=torch.__version__, bits=args.bits, rows=rows), f, indent=1)
    print(f"\nW{args.bits}A16 g128 bf16 on {card}: graph us per call; the decode kernel's speedup over bf16, the GEMM and marlin")
    for r in rows:
        extra = " | splits " + " ".join(f"{s}:{r[f's{s}_us']:.1f}" for s in split_list) if r["m"] == 1 else ""
        mar = r.get("marlin_us") or 0.0
        print(f"{r['shape']:8s} M={r['m']:<3d} bf16 {r['bf16_us']:6.1f} marlin {mar:6.1f} gemm {r['gemm_us']:6.1f} "
              f"decode {r['decode_us']:6.1f} -> {r['bf16_us'] / r['decode_us']:4.2f}x bf16, "
              f"{r['gemm_us'] / r['decode_us']:4.2f}x gemm, {mar / r['decode_us']:4.2f}x marlin{extra}")


if __name__ == "__main__":
    main()
