"""The cutlass provider's act-order gathers (x's columns in the weight's sorted K order, once per call:
``csrc/act_order_gather.cuh`` launch_gather, a thread per element or blocks per row staged in shared
memory, ``configs.W4A16_GATHER_STAGED_MIN_M`` picks) and ``torch.index_select`` along K, on the
Llama-3-8B K (4096, 14336) and a long one past the default 48 KB of shared memory (28672), CUDA-graph µs
per call over rotated inputs; every output checked equal to ``x[:, perm]`` first (a gather moves bits:
exact). Where the two kernels cross is where the staged threshold belongs.

    python3 -m tools.cutlass_w4a16_gather_bench --build build/gather      (nvcc only, seconds, any machine)
    python3 -m tools.cutlass_w4a16_gather_bench --lib build/gather [--ms 1,16,64] [--out gather.json]   (GPU)
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
    subprocess.run([nvcc, "-O3", "-std=c++17", GENCODE, "-Xcompiler", "-fPIC", "-shared", f"-I{CSRC}", str(SOURCE), "-o",
                    str(out / "gather.so")], check=True)
    print(f"built {out / 'gather.so'}")


def run(lib_dir: str, out_path: str, ms: list[int]) -> None:
    import torch

    from qlinear import timing
    from qlinear_cutlass.w4a16_layout import gather_index

    from .harness import copies_for

    lib = ctypes.CDLL(str(Path(lib_dir) / "gather.so"))
    fn = lib.qlc_gather
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int,
                   ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_char_p
    dev = torch.device("cuda")
    kernels = {"per_element": 0, "staged": 1}

    def call(staged, out, x, perm):
        err = fn(out.data_ptr(), x.data_ptr(), perm.data_ptr(), x.shape[0], x.shape[1], x.stride(0), 1, staged,
                 torch.cuda.current_stream().cuda_stream)
        if err:
            raise RuntimeError(err.decode())
        return out

    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for k in (4096, 14336, 28672):
        perm = torch.randperm(k, device=dev, generator=gen)
        index = gather_index(perm)  # uint16 bits, as the provider stores it
        for m in ms:
            copies = copies_for(2 * m * k, dev, min_copies=2, max_copies=32)
            xs = [torch.randn(m, k, device=dev, dtype=torch.bfloat16, generator=gen) for _ in range(copies)]
            outs = [torch.empty_like(x) for x in xs]
            r = {"m": m, "k": k, "copies": copies,
                 "index_select_us": timing.graph_us(lambda j: xs[j % copies].index_select(1, perm), calls=copies, reps=20)}
            for name, staged in kernels.items():
                try:
                    if not torch.equal(call(staged, outs[0], xs[0], index), xs[0][:, perm]):
                        raise RuntimeError("output differs from x[:, perm]")
                    r[name + "_us"] = timing.graph_us(lambda j, s=staged: call(s, outs[j % copies], xs[j % copies], index),
                                                      calls=copies, reps=20)
                except RuntimeError as e:  # a kernel that fails is reported, the others still timed
                    r[name + "_error"] = str(e)[:200]
            rows.append(r)
            print(f"K={k:<6d} M={m:<5d} " +
                  "  ".join(f"{c[:-3]} {v:.1f}" if isinstance(v, float) else f"{c} {v}"
                            for c, v in r.items() if c.endswith(("_us", "_error"))), flush=True)
    with open(out_path, "w") as f:
        json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "unit": "us (CUDA graph, per call)",
                   "rows": rows}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=None, help="compile the standalone library into this folder (no GPU)")
    ap.add_argument("--lib", default=None, help="the folder holding gather.so: check and time it (GPU)")
    ap.add_argument("--out", default="cutlass_w4a16_gather.json")
    ap.add_argument("--ms", default="1,8,16,24,32,48,64,128,256,512,2048,4096", help="rows of x, comma-separated")
    args = ap.parse_args()
    if args.build:
        return build(args.build)
    if args.lib:
        return run(args.lib, args.out, [int(m) for m in args.ms.split(",")])
    ap.error("give --build DIR or --lib DIR")


if __name__ == "__main__":
    main()
