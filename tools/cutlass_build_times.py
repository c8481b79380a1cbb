"""Build (or load) one of the cutlass provider's extensions and print how long each object took, from
ninja's log: per object, then per family the wall-clock span of its objects (compiled in parallel,
``MAX_JOBS``). For ``providers/cutlass/gpu_check.sh``; #12 asks for at most 60 s per family.

    python -m tools.cutlass_build_times w8a8|w4a16|w4a8|nvfp4
"""

from __future__ import annotations

import sys
import time

from qlinear_cutlass import build


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "w8a8"
    if name not in build.EXTENSIONS:
        raise SystemExit(f"extension: expected one of {sorted(build.EXTENSIONS)}, got {name!r}")
    t = time.time()
    build.load(name)
    d = build.build_dir(name)
    print(f"extension {name} built/loaded in {time.time() - t:.1f} s into {d.name}")
    log = d / ".ninja_log"  # start / end ms per object
    if not log.exists():
        return
    # W8A8 holds three GEMM families (fp8, int8, fp8_block); the other extensions are one family each
    groups = build.GEMM_SOURCES if name == "w8a8" else {name: build.EXTENSIONS[name][0]}
    spans: dict[str, tuple[int, int]] = {}
    for line in log.read_text().splitlines()[1:]:
        start, end, _, target, _ = line.split("\t")
        fam = next((f for f, srcs in groups.items() if any(s.rsplit(".", 1)[0] in target for s in srcs)), "other")
        lo, hi = spans.get(fam, (1 << 60, 0))
        spans[fam] = (min(lo, int(start)), max(hi, int(end)))
        print(f"   {target:40s} {(int(end) - int(start)) / 1000:6.1f} s")
    for fam, (lo, hi) in spans.items():
        print(f"family {fam}: {(hi - lo) / 1000:.1f} s wall (objects compiled in parallel)")


if __name__ == "__main__":
    main()
