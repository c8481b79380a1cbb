"""``qlinear bench``: time the usable kernels over M beside bf16 ``F.linear``; JSON + PNG."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import torch

from ..families.schemes import FAMILY_SCHEME, parse_dtype as _dtype, scheme_config
from .common import _csv, _csv_ints, _default_device, _Fmt


def add_parser(sub) -> None:
    b = sub.add_parser("bench", formatter_class=_Fmt, help="time usable kernels over M against bf16 F.linear (JSON + PNG)",
                       description=textwrap.dedent("""\
                           Time every usable kernel for each scheme over batch sizes M, beside the bf16
                           F.linear baseline, on the same inputs, and write JSON + a PNG plot to --out.
                           Method (bench/README.md): warmup first (JIT out of timing), median of timed
                           calls capped by --max-time, 4 random inputs rotated, weights rotated over
                           enough copies to exceed the cache (CPU >= 6 copies and >= 96 MiB, GPU > 2x
                           L2). What is timed is kernel.apply_weights(layer, x) (no input checks). GPU:
                           triton.testing.do_bench median if triton is there, else CUDA events;
                           --cuda-graph adds graph-replay figures. Each point also shows the memory
                           floor = bytes the format must move / bandwidth (measured or --bandwidth)."""))
    b.add_argument("--n", type=int, default=4096, help="output features N")
    b.add_argument("--k", type=int, default=4096, help="input features K")
    b.add_argument("--m", type=_csv_ints, default=None, help="comma list of M (default 1,8,32,128 on CPU; 1,16,128,1024,4096 on GPU)")
    b.add_argument("--schemes", type=_csv, default=None,
                   help="comma list of schemes (see `qlinear explain -h`); default: w8a16-ch,w4a16-g128,int8-dynamic,"
                        "fp8-dynamic on CPU, plus fp8-block,nvfp4,mxfp4,mxfp8 on GPU")
    b.add_argument("--families", type=_csv, default=None, help="comma list of families; each adds its representative scheme")
    b.add_argument("--kernels", type=_csv, default=None, help="only kernels matching these globs (name or provider.Name)")
    b.add_argument("--exclude", type=_csv, default=None, help="drop kernels matching these globs (e.g. 'emulation.*')")
    b.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"], help="activation / baseline dtype")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    b.add_argument("--out", default="bench/out", help="directory for the JSON and PNG")
    b.add_argument("--tag", default=None, help="file name stem (default bench-<device>-N<n>K<k>)")
    b.add_argument("--max-time", type=float, default=None, help="seconds of timed calls per (kernel, M); default 1.0 CPU, 0.3 GPU")
    b.add_argument("--warmup", type=int, default=3, help="warmup calls before timing (JIT/compile happens here)")
    b.add_argument("--bandwidth", type=float, default=None, help="memory bandwidth in GB/s for the floor (default: measured)")
    b.add_argument("--tflops", type=float, default=None, help="matrix rate in TFLOP/s for a compute floor (default: none)")
    b.add_argument("--rotate-mb", type=float, default=None, help="weight copies must total at least this many MiB (default 96 CPU, 2x L2 GPU)")
    b.add_argument("--max-copies", type=int, default=64, help="cap on weight copies (tiny layers)")
    b.add_argument("--cuda-graph", action="store_true", help="GPU: also time CUDA-graph replay (no launch gaps)")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    b.add_argument("--no-plot", action="store_true", help="write JSON only")
    b.add_argument("--model", default=None, choices=["llama3-8b", "tiny"],
                   help="the decode-step benchmark instead of one layer: every linear of --layers layers of this "
                        "model once per step (CUDA graph + eager), speedup over the bf16 step")
    b.add_argument("--layers", type=int, default=None, help="--model: transformer layers per step (default 8 on GPU, 1 on CPU)")
    b.add_argument("--reps", type=int, default=20, help="--model: timed steps per point (median)")
    b.add_argument("--backend", default=None, help="--model: like QLINEAR_LINEAR_BACKEND while the layers are built")
    b.add_argument("--regime", default=None, choices=["decode", "prefill", "mixed"],
                   help="--model: like QLINEAR_REGIME while the layers are built (the M range the tuned tables "
                        "judge each layer's kernel over; decode = M <= 16)")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the stderr progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (default: on when stderr is a TTY)")
    b.set_defaults(run=cmd_bench)


def bench_schemes(a, device: str) -> list[str]:
    names = list(a.schemes or [])
    names += [FAMILY_SCHEME[f] if f in FAMILY_SCHEME else f for f in (a.families or [])]
    if not names:
        names = ["w8a16-ch", "w4a16-g128", "int8-dynamic", "fp8-dynamic"]
        if torch.device(device).type == "cuda":
            names += ["fp8-block", "nvfp4", "mxfp4", "mxfp8"]
    return list(dict.fromkeys(names))


def cmd_bench(a) -> int:
    from .. import bench as B

    device = a.device or _default_device()
    dev = torch.device(device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model:
        return bench_model(a, device)
    ms = a.m or ([1, 16, 128, 1024, 4096] if dev.type == "cuda" else [1, 8, 32, 128])
    schemes = [(s, scheme_config(s, a.n, a.k, a.dtype)) for s in bench_schemes(a, device)]
    spec = B.BenchSpec(
        n=a.n, k=a.k, ms=ms, schemes=schemes, kernels=a.kernels or (), exclude=a.exclude or (), device=device,
        baseline_dtype=_dtype(a.dtype), max_time=a.max_time or (0.3 if dev.type == "cuda" else 1.0),
        warmup=a.warmup, rotate_bytes=int(a.rotate_mb * B.MiB) if a.rotate_mb else None, max_copies=a.max_copies,
        bandwidth_gbs=a.bandwidth, tflops=a.tflops, cuda_graph=a.cuda_graph)
    if not a.no_plot:  # fail before the long run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("qlinear bench: the PNG needs matplotlib: `pip install 'qlinear[plot]'`, or pass --no-plot",
                  file=sys.stderr)
            return 2
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.tag or f"bench-{dev.type}-N{a.n}K{a.k}")
    progress = B.Progress(0, enabled=a.progress)
    result = B.run_bench(spec, progress, log=progress.write)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(B.format_table(result))
    print(f"\nwrote {stem}.json")
    if not a.no_plot:
        B.plot(result, stem + ".png")
        print(f"wrote {stem}.png")
    failed = [r for s in result["schemes"] for r in s["results"] if r.get("error")]
    return 1 if failed else 0


def bench_model(a, device: str) -> int:
    from .. import decode_step as D
    from ..settings import override_settings

    if a.kernels or a.exclude:  # the step builds layers as a user does, through selection: no kernel filter
        print("qlinear bench: --kernels / --exclude filter the single-layer bench; with --model pick kernels the way "
              "a model does, e.g. --backend mp=cutlass (QLINEAR_LINEAR_BACKEND) or --regime", file=sys.stderr)
        return 2
    dev = torch.device(device)
    ms = a.m or ([1, 16, 32, 64, 128, 256, 512, 2048] if dev.type == "cuda" else [1, 8, 32])
    spec = D.StepSpec(model=a.model, schemes=bench_schemes(a, device), ms=ms, layers=a.layers, device=device,
                      reps=a.reps, dtype=_dtype(a.dtype))
    changes = {"linear_backend": a.backend, "regime": a.regime}
    with override_settings(**{k: v for k, v in changes.items() if v}):
        result = D.run(spec, log=lambda s: print(s, file=sys.stderr))
    print(D.format_table(result))
    paths = D.write(result, a.out, a.tag) if not a.no_plot else D.write_json(result, a.out, a.tag)
    for p in paths:
        print(f"wrote {p}")
    failed = [s for s in result["schemes"] if "error" in s] + [
        r for s in result["schemes"] for r in s.get("results", []) if r.get("error") or r.get("nonfinite_outputs")]
    return 1 if failed else 0
