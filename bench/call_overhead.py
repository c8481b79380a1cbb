"""Per-call cost of the user path ``QuantLinear(x)`` against the kernel's own call, at small M.

For each scheme and M, on one layer: the median wall time of

- ``layer(x)``: the user path (input checks, per-M dispatch, the kernel call) in eager mode;
- ``kernel.apply_weights(...)``: the selected kernel's call alone (what the layer adds = the difference);
- on CUDA, the CUDA-graph replay time of ``layer(x)`` (the GPU time with no launch gaps), so the
  issue's target "eager wall <= max(1.3 x graph time, 20 us)" can be read off each row.

Eager wall is host time per call with the GPU kept busy by back-to-back calls and one sync at the
end (what a decode loop sees), not an event pair around one call; both figures come from
``qlinear.timing`` (``wall_us``, ``graph_us``).

    python bench/call_overhead.py --device cpu --schemes w8a16-ch,int8-dynamic --m 1 --out bench/out
    python bench/call_overhead.py --device cuda --out bench/out            # every scheme, M 1,4,16

``--host-only`` measures the layer's own host cost with no kernel work: the selected kernel's
``apply_weights`` is swapped (on that one instance) for one returning a preallocated output, and
``layer(x)`` is timed beside ``kernel.apply(layer, x, bias)`` (the checked per-call path the layer
used before issue #13) and the bare ``apply_weights``; minimum over reps (the noise floor of a
shared machine is one-sided).

``--profile`` runs ``layer(x)`` back to back under cProfile and prints where the host time goes
(functions by own time, per call): the profiler's own cost inflates every figure, the ranking stays.

Writes ``<out>/call_overhead-<device>.json`` (medians, the machine named) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from qlinear.timing import graph_us, wall_us

DEFAULT_SCHEMES = ("w4a16-g128", "awq-g128", "w4a16-g128-actorder", "w8a16-ch", "int8-dynamic", "int8-dynamic-asym",
                   "fp8-tensor", "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8")
SHAPES = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}


def kernel_call(layer, x):
    """The selected kernel's own call for this x (the per-M choice where the layer dispatches)."""
    m = x.numel() // x.shape[-1]
    pick = getattr(layer, "kernel_for", None)
    kern, owner = pick(m) if pick else (layer.kernel, layer)
    return lambda: kern.apply_weights(owner, x, layer.bias)


def measure(scheme: str, n: int, k: int, ms, device: torch.device, calls: int, reps: int) -> list[dict]:
    from qlinear import QuantLinear

    lin = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device=device)
    calib = torch.randn(16, k, dtype=torch.bfloat16, device=device)
    layer = QuantLinear.from_linear(lin, scheme, calib_x=calib)
    rows = []
    for m in ms:
        x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
        user = lambda: layer(x)  # noqa: E731
        raw = kernel_call(layer, x)
        row = {"scheme": scheme, "n": n, "k": k, "m": m, "kernel": type(layer.kernel).__name__,
               "eager_us": round(wall_us(user, device, calls=calls, reps=reps), 2),
               "kernel_eager_us": round(wall_us(raw, device, calls=calls, reps=reps), 2)}
        row["layer_overhead_us"] = round(row["eager_us"] - row["kernel_eager_us"], 2)
        if device.type == "cuda":
            try:
                row["graph_us"] = round(graph_us(lambda j: user(), device, calls=8, reps=reps), 2)
                row["target_us"] = round(max(1.3 * row["graph_us"], 20.0), 2)
                row["meets_target"] = row["eager_us"] <= row["target_us"]
            except Exception as e:  # noqa: BLE001 - a kernel that can't be captured is a finding, not a crash
                row["graph_error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return rows


def measure_host(scheme: str, n: int, k: int, m: int, device: torch.device, calls: int, reps: int) -> dict:
    from qlinear import QuantLinear

    lin = torch.nn.Linear(k, n, bias=True, dtype=torch.bfloat16, device=device)
    layer = QuantLinear.from_linear(lin, scheme, calib_x=torch.randn(16, k, dtype=torch.bfloat16, device=device))
    x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
    out = torch.empty(m, n, dtype=torch.bfloat16, device=device)
    pick = getattr(layer, "kernel_for", None)  # (older layers: one kernel)
    kern, owner = pick(m) if pick else (layer.kernel, layer)
    kern.apply_weights = lambda lay, xx, bias=None: out  # this instance only: no kernel work
    rows = {"layer(x)": lambda: layer(x), "kernel.apply (checked)": lambda: kern.apply(owner, x, layer.bias),
            "kernel.apply_weights": lambda: kern.apply_weights(owner, x, layer.bias)}
    return {"scheme": scheme, "n": n, "k": k, "m": m, "kernel": type(kern).__name__,
            **{name: round(wall_us(f, device, calls=calls, reps=reps, warmup=1, stat="min"), 3)
               for name, f in rows.items()}}


def profile_host(scheme: str, n: int, k: int, m: int, device: torch.device, calls: int, top: int = 25) -> str:
    """cProfile of ``calls`` back-to-back ``layer(x)``: the functions that take the host time."""
    import cProfile
    import io
    import pstats

    from qlinear import QuantLinear

    lin = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device=device)
    layer = QuantLinear.from_linear(lin, scheme, calib_x=torch.randn(16, k, dtype=torch.bfloat16, device=device))
    x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
    for _ in range(10):
        layer(x)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        layer(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = stats.total_tt * 1e6 / calls  # type: ignore[attr-defined]
    buf.write(f"== {scheme} {n}x{k} M={m} kernel={type(layer.kernel).__name__}: {total:.1f} us per call "
              f"under the profiler (tottime / calls below are per-function totals over {calls} calls)\n")
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--schemes", default=None, help="comma list (default: every scheme usable here)")
    p.add_argument("--shapes", default="qkv,o,gate_up,down", help="comma list of " + ", ".join(SHAPES) + " or NxK")
    p.add_argument("--m", default="1,4,16")
    p.add_argument("--calls", type=int, default=None, help="back-to-back calls per timing (default 200 GPU, 20 CPU)")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="bench/out")
    p.add_argument("--host-only", action="store_true", help="the layer's host cost alone (no kernel work), see above")
    p.add_argument("--profile", action="store_true", help="cProfile of back-to-back calls per scheme/shape/M, see above")
    a = p.parse_args(argv)
    from qlinear import bench as B

    dev = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    calls = a.calls or (200 if dev.type == "cuda" else 20)
    ms = [int(v) for v in a.m.split(",")]
    shapes = [SHAPES[s] if s in SHAPES else tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    if a.profile:
        for s in (a.schemes or "w4a16-g128").split(","):
            for n, k in shapes:
                for m in ms:
                    print(profile_host(s, n, k, m, dev, calls))
        return 0
    if a.host_only:
        rows = [measure_host(s, n, k, m, dev, calls * 50, a.reps) for s in (a.schemes or "w8a16-ch").split(",")
                for n, k in shapes for m in ms]
        result = {"machine": B.machine_info(dev), "rows": rows, "method": "min over reps of calls/second, us per call"}
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, f"call_overhead_host-{dev.type}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        for r in rows:
            print(r)
        print(f"wrote {path}")
        return 0
    rows, skipped = [], []
    for scheme in (a.schemes.split(",") if a.schemes else DEFAULT_SCHEMES):
        for n, k in shapes:
            try:
                rows += measure(scheme, n, k, ms, dev, calls, a.reps)
            except Exception as e:  # noqa: BLE001 - no kernel here for this scheme: say so, go on
                skipped.append({"scheme": scheme, "n": n, "k": k, "error": f"{type(e).__name__}: {str(e)[:200]}"})
            print(f"{scheme} {n}x{k} done", file=sys.stderr)
    result = {"machine": B.machine_info(dev), "calls": calls, "reps": a.reps, "rows": rows, "skipped": skipped,
              "method": "wall time of back-to-back calls / calls, median of reps; graph: CUDA-graph replay of 8 calls"}
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"call_overhead-{dev.type}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    cols = ["scheme", "n", "k", "m", "kernel", "eager_us", "kernel_eager_us", "layer_overhead_us", "graph_us", "meets_target"]
    print("  ".join(cols))
    for r in rows:
        print("  ".join(str(r.get(c, "-")) for c in cols))
    for s in skipped:
        print(f"skipped {s['scheme']} {s['n']}x{s['k']}: {s['error']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
