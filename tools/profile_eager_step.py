"""Where the host time of an eager decode step goes (issue #13), on a CUDA machine.

Builds ``layers`` x the four Llama-3-8B linears of ``scheme`` (``qlinear.decode_step``), then prints
the eager step's wall time, its host time alone (20 steps queued, no sync), each layer's eager wall
per call when called back to back, and a cProfile of 50 steps (functions by own time; the profiler's
cost inflates every figure, the ranking stays).

    python3 -m tools.profile_eager_step [scheme] [layers]      # default w4a16-g128 2
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

import torch

from qlinear import decode_step as D
from qlinear.timing import wall_us


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    scheme = argv[0] if argv else "w4a16-g128"
    layers = int(argv[1]) if len(argv) > 1 else 2
    dev = torch.device("cuda")
    shapes = D.MODELS["llama3-8b"]
    mods = D.build_layers(scheme, shapes, layers, dev, 0)
    xs = D.make_inputs(shapes, 1, dev, 0)
    step = D.step_fn(mods, xs)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    eager = wall_us(step, dev, calls=1, reps=9)
    t0 = time.perf_counter()
    for _ in range(20):
        step()
    host = (time.perf_counter() - t0) / 20 * 1e6
    torch.cuda.synchronize()
    print(f"{scheme}, {layers} layers, M=1 on {torch.cuda.get_device_name()}: eager step {eager:.0f} us; "
          f"host alone {host:.0f} us for {len(mods)} calls")
    for role, (n, k) in shapes.items():
        mod = next(m for r, m in mods if r == role)
        x = xs[k]
        print(f"  {role} {n}x{k}: {wall_us(lambda: mod(x), dev, calls=50, reps=5):.1f} us per call back to back")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(50):
        step()
    torch.cuda.synchronize()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
