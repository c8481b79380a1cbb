"""Many tile shapes of the cutlass W4A16 mixed-input GEMM, timed side by side on one GPU.

The provider's extensions compile a handful of tiles (``configs.W4A16_SHAPES``); which ones, and
where each takes over, is what this answers. Each candidate (``tools/cutlass_tiles/w4a16_tile.cu`` under
-D flags) is compiled on its own into a shared library with a C entry point taking the provider's
``W4A16Args`` (no torch inside, so the libraries built on one machine run beside any torch on
another), then timed through ctypes on the same re-laid weights (``w4a16_layout``), CUDA graphs over
rotated weight copies, against bf16 ``F.linear``. Before timing, every candidate's output is checked
against ``F.linear`` on the dequantized weight (relative error, failing above 1e-2).

    python -m tools.cutlass_w4a16_tiles build [--out DIR] [--only NAME,...] [--jobs N]
    python -m tools.cutlass_w4a16_tiles run --lib DIR [--shapes 4096x4096,...] [--m 16,64,...] [--out f.json]
        [--modes heuristic,dp,split2,split4,streamk]

``-nv`` / ``-mx`` build a candidate for NVFP4 / MXFP4 codes (E2M1, a scale per 16 / 32 k,
``csrc/mixed_input_float.cuh``), timed on random codes and power-of-two scales.

``--modes`` also times each stream-K candidate with its decomposition forced (data-parallel, split-K
into N, stream-K) besides the scheduler's own heuristic, which is what the provider runs.

Suffixes on a candidate's name: ``-w8`` builds it for 8-bit codes (W8A16); ``-gdc`` builds it with
CUTLASS's grid-dependency control and launches it as a programmatic dependent (PDL) of the kernel
before it, so consecutive calls overlap one's prologue with the other's tail (``--only
n128m64k64c2,n128m64k64c2-gdc`` times the provider's M = 64 tile both ways).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name -> (weight rows, token rows, K, cluster along N, ping-pong, stream-K); ping-pong (64-row weight
# tiles) does not compile with this mainloop and the EVT epilogue, so every candidate is cooperative
CANDIDATES = {
    "n128m16k64c1": (128, 16, 64, 1, 0, 1),
    "n128m32k64c1": (128, 32, 64, 1, 0, 1),
    "n128m32k64c2": (128, 32, 64, 2, 0, 1),
    "n128m64k64c1": (128, 64, 64, 1, 0, 1),
    "n128m64k64c2": (128, 64, 64, 2, 0, 1),
    "n128m128k64c1": (128, 128, 64, 1, 0, 1),
    "n128m128k64c2": (128, 128, 64, 2, 0, 1),
    "n128m256k64c2p": (128, 256, 64, 2, 0, 0),   # persistent: the large tile before the seven
    "n128m64k64c2p": (128, 64, 64, 2, 0, 0),  # persistent: the M = 64 tile where -gdc compiles (CUTLASS 4.2's
    # stream-K scheduler does not under CUTLASS_ENABLE_GDC_FOR_SM90: its const is_last_tile binds a member to a
    # non-const reference)
    "n128m256k64c2": (128, 256, 64, 2, 0, 1),
    "n256m16k64c1": (256, 16, 64, 1, 0, 1),
    "n256m32k64c2": (256, 32, 64, 2, 0, 1),
    "n256m64k64c2": (256, 64, 64, 2, 0, 1),
    "n256m128k64c2": (256, 128, 64, 2, 0, 1),
    "n128m16k128c1": (128, 16, 128, 1, 0, 1),
    "n128m64k128c2": (128, 64, 128, 2, 0, 1),
}
# configs.W4A16_TILES -> the candidate the provider compiles for it
SHIPPED = {"m16": "n128m16k64c1", "m16w": "n256m16k64c1", "m64": "n128m64k64c2", "m64w": "n256m64k64c2",
           "m128": "n128m128k64c2", "m128w": "n256m128k64c2", "m256": "n128m256k64c2"}
SOURCE = Path(__file__).parent / "cutlass_tiles" / "w4a16_tile.cu"
SHAPES = "6144x4096,4096x4096,28672x4096,4096x14336"
MS = "16,32,64,128,256,512,1024"
CALLS = 20
MODES = {"heuristic": (0, 1), "dp": (1, 1), "streamk": (3, 1)}  # name -> (DecompositionMode, splits); splitN: (2, N)


def parse_mode(name: str) -> tuple[int, int]:
    if name in MODES:
        return MODES[name]
    if name.startswith("split") and name[5:].isdigit() and int(name[5:]) > 1:
        return 2, int(name[5:])
    raise SystemExit(f"--modes: unknown mode {name!r}; expected {', '.join(MODES)} or splitN (N > 1)")


# ---- build ---------------------------------------------------------------------------------------
def base_of(name: str) -> str:
    """The CANDIDATES key of a library / row name: suffixes (``-w8``, ``-gdc``) and ``@mode`` stripped."""
    return name.split("@")[0].split("-")[0]


def suffixes_of(name: str) -> set[str]:
    return set(name.split("@")[0].split("-")[1:])


FP4_GROUPS = {"nv": 16, "mx": 32}  # suffix -> E2M1 codes with a scale per that many k (NVFP4, MXFP4)


def nvcc_command(name: str, out: Path, zero: bool = False, fp16: bool = False) -> list[str]:
    """Suffixes: ``-w8`` builds the candidate for 8-bit codes (W8A16), ``-nv`` / ``-mx`` for NVFP4 /
    MXFP4 codes (csrc/mixed_input_float.cuh), ``-gdc`` with PDL launches."""
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.build import CSRC, cuda_flags
    from qlinear_cutlass.gates import cutlass_include_dirs

    nvcc, inc = find_nvcc(), cutlass_include_dirs()
    if nvcc is None or inc is None:
        raise SystemExit("needs nvcc and the CUTLASS headers (pip install nvidia-cutlass)")
    tn, tm, tk, cn, pp, sk = CANDIDATES[base_of(name)]
    flags = suffixes_of(name)
    defs = dict(QLC_TILE_N=tn, QLC_TILE_M=tm, QLC_TILE_K=tk, QLC_CLUSTER_N=cn, QLC_PINGPONG=pp, QLC_STREAMK=sk,
                QLC_ZERO=int(zero), QLC_FP16=int(fp16), QLC_BITS=8 if "w8" in flags else 4, QLC_GDC=int("gdc" in flags),
                QLC_FP4=next((g for f, g in FP4_GROUPS.items() if f in flags), 0))
    if "gdc" in flags:
        defs["CUTLASS_ENABLE_GDC_FOR_SM90"] = 1
    return [nvcc, *cuda_flags(), "-shared", "-Xcompiler", "-fPIC", f"-I{CSRC}", *(f"-I{d}" for d in inc),
            *(f"-D{k}={v}" for k, v in defs.items()), str(SOURCE), "-o", str(out)]


def build(out_dir: Path, names: list[str], jobs: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> str:
        t = time.time()
        so = out_dir / f"{name}.so"
        r = subprocess.run(nvcc_command(name, so.with_suffix(".tmp.so")), capture_output=True, text=True)
        if r.returncode:
            return f"{name}: FAILED\n{r.stderr[-3000:]}"
        os.replace(so.with_suffix(".tmp.so"), so)  # a finished library only: concurrent builders never see half a file
        return f"{name}: {time.time() - t:.0f} s"

    with cf.ThreadPoolExecutor(jobs) as ex:
        for i, msg in enumerate(ex.map(one, names), 1):
            print(f"[{i}/{len(names)}] {msg}", flush=True)


# ---- run -----------------------------------------------------------------------------------------
def _kind(tile) -> str:
    """The weight a candidate reads: "4" / "8" (integer codes), "nv" / "mx" (FP4 codes)."""
    f = suffixes_of(tile.name)
    return next((k for k in FP4_GROUPS if k in f), "8" if "w8" in f else "4")


def weights_for(kind: str, n: int, k: int, dev, g):
    """(re-laid weight, scale table, group, alpha, dequantized fp32 reference) for one kind of candidate."""
    import torch

    from qlinear.formats.codes import e2m1_decode
    from qlinear.formats.int_pack import pack_along
    from qlinear_cutlass.w4a16_layout import scale_table, sub_scale_table, weight_fp4, weight_int4

    if kind in FP4_GROUPS:
        group = FP4_GROUPS[kind]
        codes = torch.randint(0, 16, (n, k), device=dev, generator=g, dtype=torch.int32)
        # scales as the kernel stores them: times 2^126, the bf16 placement bias (code_scales), so alpha is 1
        scales = torch.exp2(torch.randint(-12, -4, (n, k // group), device=dev, generator=g).float())
        w_ref = e2m1_decode(codes.to(torch.uint8)) * scales.repeat_interleave(group, 1)
        return weight_fp4(codes), sub_scale_table(scales * 2.0 ** 126, group, torch.bfloat16), group, 1.0, w_ref
    bits = int(kind)
    scales = torch.rand(n, k // 128, device=dev, generator=g) * 0.01 + 0.001
    codes = torch.randint(0, 1 << bits, (n, k), device=dev, generator=g, dtype=torch.int32)
    w_ref = (codes - (1 << (bits - 1))).float() * scales.repeat_interleave(128, 1)
    return weight_int4(pack_along(codes, bits, 1), bits=bits), scale_table(scales, torch.bfloat16), 128, 1.0, w_ref


class W4A16Args(ctypes.Structure):  # csrc/w4a16_api.h, field for field
    _fields_ = [("m", ctypes.c_int), ("n", ctypes.c_int), ("k", ctypes.c_int), ("group", ctypes.c_int),
                ("lda", ctypes.c_int64), ("ldd", ctypes.c_int64),
                ("x", ctypes.c_void_p), ("w", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("zero", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), ("out", ctypes.c_void_p),
                ("config", ctypes.c_int), ("act", ctypes.c_int), ("device", ctypes.c_int), ("sm_count", ctypes.c_int),
                ("workspace", ctypes.c_void_p), ("workspace_bytes", ctypes.c_size_t), ("alpha", ctypes.c_float)]


class Tile:
    """One compiled candidate: ``tile(out, x, w, scale, group)`` runs it on torch's current stream;
    with ``mode`` (``parse_mode``) under a forced stream-K decomposition."""

    def __init__(self, path: Path, mode: str | None = None):
        self.name = path.stem + (f"@{mode}" if mode else "")
        self.lib = ctypes.CDLL(str(path))
        self.mode = parse_mode(mode) if mode else None
        if self.mode is None:
            self._run, self._ws = self.lib.qlc_w4a16_run, self.lib.qlc_w4a16_workspace
            self._run.argtypes = [ctypes.POINTER(W4A16Args), ctypes.c_void_p]
            self._ws.argtypes = [ctypes.POINTER(W4A16Args)]
        else:
            self._run, self._ws = self.lib.qlc_w4a16_run_mode, self.lib.qlc_w4a16_workspace_mode
            self._run.argtypes = [ctypes.POINTER(W4A16Args), ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            self._ws.argtypes = [ctypes.POINTER(W4A16Args), ctypes.c_int, ctypes.c_int]
        self._run.restype, self._ws.restype = ctypes.c_char_p, ctypes.c_size_t
        self.workspace = None

    @staticmethod
    def has_modes(path: Path) -> bool:
        return hasattr(ctypes.CDLL(str(path)), "qlc_w4a16_run_mode")

    def args(self, out, x, w, scale, group, alpha=1.0):
        import torch

        dev = x.device
        return W4A16Args(x.shape[0], out.shape[1], x.shape[1], group, x.stride(0), out.stride(0), x.data_ptr(),
                         w.data_ptr(), scale.data_ptr(), None, None, out.data_ptr(), 0, 0, dev.index or 0,
                         torch.cuda.get_device_properties(dev).multi_processor_count, None, 0, alpha)

    def prepare(self, out, x, w, scale, group, alpha=1.0):
        """Size the workspace for this call's problem, outside any graph capture (it only grows)."""
        import torch

        need = self._ws(ctypes.byref(self.args(out, x, w, scale, group, alpha)), *(self.mode or ()))
        if self.workspace is None or self.workspace.numel() < need:
            self.workspace = torch.empty(max(need, 1), dtype=torch.uint8, device=x.device)

    def __call__(self, out, x, w, scale, group, alpha=1.0):
        import torch

        a = self.args(out, x, w, scale, group, alpha)
        a.workspace, a.workspace_bytes = self.workspace.data_ptr(), self.workspace.numel()
        err = self._run(ctypes.byref(a), ctypes.c_void_p(torch.cuda.current_stream().cuda_stream), *(self.mode or ()))
        if err:
            raise RuntimeError(f"{self.name}: {err.decode()}")
        return out


def run(lib_dir: Path, shapes: str, ms: str, out_path: str | None, modes: str | None = None) -> None:
    import torch
    import torch.nn.functional as F

    from qlinear import timing
    from qlinear.formats.int_pack import pack_along
    from qlinear_cutlass.w4a16_layout import scale_table, weight_int4

    from .harness import copies_for

    paths = sorted(lib_dir.glob("*.so"))
    tiles = [Tile(p) for p in paths]
    if modes:
        tiles += [Tile(p, m) for p in paths if Tile.has_modes(p) for m in modes.split(",")]
    if not tiles:
        raise SystemExit(f"no candidate libraries in {lib_dir} (run the build step first)")
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name()
    print(f"# {name} | torch {torch.__version__} | GPTQ g128 (FP4: g16 / g32) bf16 | CUDA graphs of {CALLS} calls over rotated weights, median us per call")
    rows, failed = [], {}

    def save():
        if out_path:
            with open(out_path, "w") as f:
                json.dump({"device": name, "torch": torch.__version__, "unit": "us", "group": 128,
                           "method": f"CUDA graph of {CALLS} calls, median of replays", "candidates":
                           {t.name: CANDIDATES.get(base_of(t.name)) for t in tiles}, "failed": failed, "rows": rows}, f, indent=1)

    from qlinear_cutlass import configs

    names = {v: k for k, v in configs.W4A16_TILES.items()}
    print(f"{'N x K':>11} {'M':>5} {'bf16':>7}  best (us, x bf16) / the provider's pick for (M, N)")
    for shape in shapes.split(","):
        n, k = map(int, shape.split("x"))
        copies = copies_for(n * k // 2, dev, min_copies=2, max_copies=16)
        g = torch.Generator(device=dev).manual_seed(0)
        data = {}  # kind -> (rotated weight buffers, rotated scale tables, group, alpha, dequantized reference)
        for kind in sorted({_kind(t) for t in tiles}):
            w_q, s_t, group, alpha, w_ref = weights_for(kind, n, k, dev, g)
            data[kind] = ([w_q] + [w_q.clone() for _ in range(copies - 1)], [s_t] + [s_t.clone() for _ in range(copies - 1)],
                          group, alpha, w_ref)
        w16 = [next(iter(data.values()))[4].to(torch.bfloat16)]
        w16 += [w16[0].clone() for _ in range(copies - 1)]
        xe = torch.randn(97, k, device=dev, dtype=torch.bfloat16)
        ok_tiles = []
        for t in tiles:
            ws, ss, group, alpha, w_ref = data[_kind(t)]
            try:
                oe = torch.empty(97, n, device=dev, dtype=torch.bfloat16)
                t.prepare(oe, xe, ws[0], ss[0], group, alpha)
                ref = F.linear(xe.float(), w_ref)
                out = t(oe, xe, ws[0], ss[0], group, alpha).float()
                err = float((out - ref).norm() / ref.norm())
                if not err < 1e-2:
                    raise RuntimeError(f"relative error {err:.2e} against F.linear on the dequantized weight")
                ok_tiles.append(t)
            except Exception as e:  # noqa: BLE001 - a candidate that fails is reported and left out
                failed[f"{t.name} {shape}"] = str(e)[:300]
                print(f"# {t.name} on {shape}: {e}", flush=True)
        for m in map(int, ms.split(",")):
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            out = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            row = {"n": n, "k": k, "m": m, "bf16": timing.graph_us(lambda j: F.linear(x, w16[j % copies]), calls=CALLS, reps=15)}
            for t in ok_tiles:
                ws, ss, group, alpha, _ = data[_kind(t)]
                try:
                    t.prepare(out, x, ws[0], ss[0], group, alpha)  # stream-K's workspace depends on M: sized per M, before capture
                    row[t.name] = timing.graph_us(lambda j, t=t, ws=ws, ss=ss, group=group, alpha=alpha:
                                                  t(out, x, ws[j % copies], ss[j % copies], group, alpha), calls=CALLS, reps=15)
                except Exception as e:  # noqa: BLE001
                    failed[f"{t.name} {shape} m={m}"] = str(e)[:300]
            rows.append(row)
            cand = {c: v for c, v in row.items() if c in CANDIDATES}  # 4-bit candidates; 8-bit ones listed apart
            forced = {c: v for c, v in row.items() if "@" in c or "gdc" in suffixes_of(c)}  # listed one by one
            best = min(cand, key=cand.get) if cand else None
            pick = SHIPPED[names[configs.w4a16_tile_for(m, n)]]
            shipped = f"{pick} {row.get(pick, float('nan')):.1f}"
            w8s = ""
            for label, tag in (("8-bit", "w8"), ("NVFP4", "nv"), ("MXFP4", "mx")):
                of = {c: v for c, v in row.items() if suffixes_of(c) == {tag}}
                w8s += f" | {label} best {min(of, key=of.get)} {min(of.values()):.1f}" if of else ""
            w8s += "".join(f" | {c} {v:.1f}" for c, v in sorted(forced.items()))
            print(f"{shape:>11} {m:>5} {row['bf16']:7.1f}  {best} {cand.get(best, float('nan')):.1f} "
                  f"({row['bf16'] / cand[best]:.2f}x) / {shipped}{w8s}" if best else f"{shape:>11} {m:>5} {row['bf16']:7.1f}  -{w8s}",
                  flush=True)
            save()
        del data, w16
        torch.cuda.empty_cache()
    save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the candidates (one shared library each, in parallel)")
    b.add_argument("--out", default="build/w4a16_tiles")
    b.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    r = sub.add_parser("run", help="time the compiled candidates against bf16 F.linear")
    r.add_argument("--lib", default="build/w4a16_tiles")
    r.add_argument("--shapes", default=SHAPES)
    r.add_argument("--m", default=MS)
    r.add_argument("--out", default=None)
    r.add_argument("--modes", default=None, help="also time stream-K candidates with a forced decomposition: "
                   "comma list of heuristic, dp, streamk, splitN")
    args = ap.parse_args()
    if args.cmd == "build":
        names = args.only.split(",") if args.only else list(CANDIDATES)
        unknown = [x for x in names if base_of(x) not in CANDIDATES or suffixes_of(x) - {"w8", "gdc", *FP4_GROUPS}]
        if unknown:
            sys.exit(f"--only: unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
        build(Path(args.out), names, args.jobs)
    else:
        run(Path(args.lib), args.shapes, args.m, args.out, args.modes)


if __name__ == "__main__":
    main()
