"""The cutlass provider's act-order gather (x's columns in the weight's sorted K order, once per call:
``csrc/w4a16_decode.cuh`` launch_gather, a thread per element), the row-staged candidate of
``tools/cutlass_tiles/w4a16_gather_rows.cuh`` (not in the provider: never run yet) and
``torch.index_select`` along K, M = 1 .. 2048 on the Llama-3-8B K (4096, 14336), CUDA-graph µs per call
over rotated inputs; every output checked equal to ``x[:, perm]`` first (a gather moves bits: exact).

    python3 -m tools.cutlass_w4a16_gather_bench --build build/gather      (nvcc only, seconds, any machine)
    python3 -m tools.cutlass_w4a16_gather_bench --lib build/gather [--out gather.json]   (GPU)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
from pathlib import Path

SOURCE = Path(__file__).parent / "cutlass_tiles" / "w4a16_gather_lib.cu"


def build(out_dir: str) -> None:
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.build import CSRC, GENCODE

    nvcc = find_nvcc()
    if nvcc is None:
        raise SystemExit("nvcc not found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([nvcc, "-O3", "-std=c++17", GENCODE, "-Xcompiler", "-fPIC", "-shared", f"-I{SOURCE.parent}", f"-I{CSRC}",
                    str(SOURCE), "-o",
                    str(out / "gather.so")], check=True)
    print(f"built {out / 'gather.so'}")


def run(lib_dir: str, out_path: str) -> None:
    import torch

    from qlinear import timing

    from .harness import copies_for

    lib = ctypes.CDLL(str(Path(lib_dir) / "gather.so"))
    fns = {"gather": lib.qlc_gather, "gather_rows": lib.qlc_gather_rows}
    for fn in fns.values():
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int,
                       ctypes.c_void_p]
        fn.restype = ctypes.c_char_p
    dev = torch.device("cuda")

    def call(fn, out, x, perm):
        err = fn(out.data_ptr(), x.data_ptr(), perm.data_ptr(), x.shape[0], x.shape[1], x.stride(0), 1,
                 torch.cuda.current_stream().cuda_stream)
        if err:
            raise RuntimeError(err.decode())
        return out

    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for k in (4096, 14336):
        perm = torch.randperm(k, device=dev, generator=gen)
        for m in (1, 16, 17, 64, 256, 2048):
            copies = copies_for(2 * m * k, dev, min_copies=2, max_copies=32)
            xs = [torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen) for _ in range(copies)]
            outs = [torch.empty_like(x) for x in xs]
            r = {"m": m, "k": k, "copies": copies,
                 "index_select_us": timing.graph_us(lambda j: xs[j % copies].index_select(1, perm), calls=copies, reps=20)}
            for name, fn in fns.items():
                try:
                    if not torch.equal(call(fn, outs[0], xs[0], perm), xs[0][:, perm]):
                        raise RuntimeError("output differs from x[:, perm]")
                    r[name + "_us"] = timing.graph_us(lambda j, fn=fn: call(fn, outs[j % copies], xs[j % copies], perm),
                                                      calls=copies, reps=20)
                except RuntimeError as e:  # a candidate that fails is reported, the others still timed
                    r[name + "_error"] = str(e)[:200]
            rows.append(r)
            print(f"K={k:<6d} M={m:<5d} " + "  ".join(f"{c} {v:.1f}" if isinstance(v, float) else f"{c} {v}"
                                                     for c, v in r.items() if c.endswith(("_us", "_error"))), flush=True)
    with open(out_path, "w") as f:
        json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "unit": "us (CUDA graph, per call)",
                   "rows": rows}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=None, help="compile the standalone library into this folder (no GPU)")
    ap.add_argument("--lib", default=None, help="the folder holding gather.so: check and time it (GPU)")
    ap.add_argument("--out", default="cutlass_w4a16_gather.json")
    args = ap.parse_args()
    if args.build:
        return build(args.build)
    if args.lib:
        return run(args.lib, args.out)
    ap.error("give --build DIR or --lib DIR")


if __name__ == "__main__":
    main()
