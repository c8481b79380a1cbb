"""The decode-step benchmark: what a user of a Llama-3-8B-class model feels.

One step = every linear of ``layers`` transformer layers once, on M rows. Per layer the four
Llama-3-8B linear shapes (N x K): qkv 6144x4096, o 4096x4096, gate_up 28672x4096, down 4096x14336.
Each layer is built the way a user builds it (``QuantLinear.from_linear(linear, scheme)``), so the
kernel timed is the one ``select`` returns. Per scheme and M it reports the CUDA-graph time of the
whole step, the eager wall time of the step (a Python loop over the layers, as a model runs it),
the speedup of both over the bf16 step measured in the same run, the kernel each shape selected,
the bytes the step must move and the memory floor; and the same per layer shape, so a regression
in one shape is visible.

Why these rules: 8 layers hold 3.5 GB of bf16 weights, far past any L2, so no cache flush is
needed between graph replays; the bf16 step runs in the same process on the same inputs, so the
goal is a ratio; medians of many replays.

    qlinear bench --model llama3-8b --schemes w4a16-g128,fp8-dynamic --m 1,16,128,2048

A tools module: the runtime path (``nn``, selection, kernels) never imports it.
"""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .settings import get_settings
from .timing import graph_us, wall_us

MODELS: dict[str, dict[str, tuple[int, int]]] = {
    "llama3-8b": {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)},
    # the same four roles at a size a CPU test can build in a second
    "tiny": {"qkv": (384, 256), "o": (256, 256), "gate_up": (1024, 256), "down": (256, 512)},
}
DEFAULT_LAYERS = {"cuda": 8, "cpu": 1}
BASELINE = "bf16"  # the float baseline's name (its dtype's: "fp16" when the step runs in fp16)
_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class StepSpec:
    model: str = "llama3-8b"
    schemes: Sequence[str] = ("w4a16-g128",)
    ms: Sequence[int] = (1, 16, 32, 64, 128, 256, 512, 2048)
    layers: int | None = None  # default per device (DEFAULT_LAYERS)
    device: str = "cuda"
    reps: int = 20  # timed replays / eager steps per point (median)
    per_shape: bool = True
    seed: int = 0
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # overrides MODELS[model]
    dtype: torch.dtype = torch.bfloat16  # activations, the baseline's weights and every scheme's act dtype

    @property
    def baseline(self) -> str:
        return _DTYPE_NAMES[self.dtype]


def module_bytes(mod: torch.nn.Module) -> int:
    """Bytes a forward call must read: the module's parameters and buffers (as re-laid)."""
    seen, total = set(), 0
    for t in list(mod.parameters()) + list(mod.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def build_layers(scheme: str, shapes: dict[str, tuple[int, int]], layers: int, dev: torch.device,
                 seed: int, dtype: torch.dtype = torch.bfloat16) -> list[tuple[str, torch.nn.Module]]:
    """``layers`` x every shape, each an ``nn.Linear`` with random (std 0.02) weights, turned into
    the scheme's ``QuantLinear`` with ``dtype`` activations as a user would (the baseline, named
    after ``dtype``: the float layer itself, in that dtype)."""
    from .nn import QuantLinear

    g = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for _ in range(layers):
        for role, (n, k) in shapes.items():
            lin = torch.nn.Linear(k, n, bias=False, device=dev, dtype=torch.float32)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(n, k, device=dev, generator=g) * 0.02)
            calib = torch.randn(16, k, device=dev, generator=g)  # drawn always: every scheme sees the same weights
            if scheme == _DTYPE_NAMES[dtype]:
                mod = lin.to(dtype)
            else:
                mod = QuantLinear.from_linear(lin, scheme, calib_x=calib, dtype=dtype)
                del lin
            out.append((role, mod))
    return out


def make_inputs(shapes: dict[str, tuple[int, int]], m: int, dev: torch.device, seed: int,
                dtype: torch.dtype = torch.bfloat16) -> dict[int, torch.Tensor]:
    """One activation [M, K] of ``dtype`` per distinct K: random, never zero, a few outlier channels."""
    g = torch.Generator(device=dev).manual_seed(seed + 1000 * m)
    xs = {}
    for _, k in shapes.values():
        if k not in xs:
            x = torch.randn(m, k, device=dev, generator=g)
            x[:, :: max(1, k // 7)] *= 4
            xs[k] = x.to(dtype)
    return xs


def step_fn(mods: Sequence[tuple[str, torch.nn.Module]], xs: dict[int, torch.Tensor]) -> Callable[[], None]:
    calls = [(mod, xs[_in_features(mod)]) for _, mod in mods]

    def step() -> None:
        for mod, x in calls:
            mod(x)

    return step


def _in_features(mod: torch.nn.Module) -> int:
    if isinstance(mod, torch.nn.Linear):
        return mod.in_features
    return mod.config.shape_nk[1]


def time_graph(step: Callable[[], None], dev: torch.device, reps: int) -> float:
    """Median µs of replaying one CUDA graph holding ``step`` (``qlinear.timing.graph_us``)."""
    return graph_us(lambda j: step(), dev, calls=1, reps=reps)


def time_eager(step: Callable[[], None], dev: torch.device, reps: int) -> float:
    """Median wall µs of one eager step, from the first Python call to the device being done
    (``qlinear.timing.wall_us``)."""
    return wall_us(step, dev, calls=1, reps=reps, warmup=3)


def nonfinite_outputs(mods, xs) -> int:
    """How many layers return a non-finite value on these inputs (a kernel returning garbage must
    not be timed as fast)."""
    return sum(int(not torch.isfinite(mod(xs[_in_features(mod)])).all()) for _, mod in mods)


def first_layer_outputs(mods, xs, count: int) -> dict[str, torch.Tensor]:
    """fp32 outputs of the first layer's linears: every scheme is compared with the bf16 ones."""
    return {role: mod(xs[_in_features(mod)]).float() for role, mod in mods[:count]}


def run(spec: StepSpec, log: Callable[[str], None] = print) -> dict:
    from .bench import machine_info, measure_bandwidth

    dev = torch.device(spec.device)
    shapes = spec.shapes or MODELS[spec.model]
    layers = spec.layers or DEFAULT_LAYERS.get(dev.type, 1)
    graph = dev.type == "cuda"
    bw = measure_bandwidth(dev)
    result: dict = {
        "machine": machine_info(dev), "model": spec.model, "shapes": {r: list(s) for r, s in shapes.items()},
        "layers": layers, "ms": list(spec.ms), "bandwidth_gbs": round(bw, 1), "baseline": spec.baseline,
        "selection": {"regime": get_settings().regime, "backend": get_settings().linear_backend},
        "method": {"graph": "one CUDA graph holding the whole step, median of replays (CUDA events)" if graph else None,
                   "eager": "perf_counter around one Python loop over the layers + device sync, median",
                   "reps": spec.reps, "floor": "(parameter bytes + activation + output bytes) / copy bandwidth"},
        "schemes": [],
    }
    ref: dict[str, torch.Tensor] = {}
    base = spec.baseline
    for scheme in [base] + [s for s in spec.schemes if s != base]:
        log(f"{scheme}: building {layers} x {len(shapes)} layers")
        t0 = time.perf_counter()
        try:
            mods = build_layers(scheme, shapes, layers, dev, spec.seed, spec.dtype)
        except Exception as e:  # noqa: BLE001 - a scheme with no usable kernel here is reported, not fatal
            result["schemes"].append({"scheme": scheme, "error": f"{type(e).__name__}: {e}"})
            log(f"  {scheme}: {type(e).__name__}: {e}")
            continue
        entry = {"scheme": scheme, "build_s": round(time.perf_counter() - t0, 1),
                 "kernels": {role: _kernel_name(mod, base) for role, mod in mods[: len(shapes)]},
                 "weight_bytes": sum(module_bytes(m) for _, m in mods), "results": []}
        with torch.no_grad():  # accuracy against the float layers on the same weights, M=16
            outs = first_layer_outputs(mods, make_inputs(shapes, 16, dev, spec.seed + 1, spec.dtype), len(shapes))
        if scheme == base:
            ref = outs
        elif ref:
            entry[f"rel_err_vs_{base}"] = {r: round(float((o - ref[r]).norm() / ref[r].norm()), 4) for r, o in outs.items()}
        del outs
        for m in spec.ms:
            xs = make_inputs(shapes, m, dev, spec.seed, spec.dtype)
            row: dict = {"m": m}
            try:
                with torch.no_grad():
                    row["nonfinite_outputs"] = nonfinite_outputs(mods, xs)
                    step = step_fn(mods, xs)
                    row["eager_us"] = round(time_eager(step, dev, spec.reps), 1)
                    if graph:
                        row["graph_us"] = round(time_graph(step, dev, spec.reps), 1)
                        if spec.per_shape:
                            row["per_shape_graph_us"] = {
                                role: round(time_graph(step_fn([t for t in mods if t[0] == role], xs), dev, spec.reps), 1)
                                for role in shapes}
            except Exception as e:  # noqa: BLE001
                row["error"] = f"{type(e).__name__}: {e}"
            io = sum(m * (n + k) * 2 for n, k in shapes.values()) * layers
            row["bytes_moved"] = entry["weight_bytes"] + io
            row["floor_us"] = round(row["bytes_moved"] / (bw * 1e9) * 1e6, 1)
            entry["results"].append(row)
            log(f"  M={m}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k.endswith("_us") and not isinstance(v, dict)))
        result["schemes"].append(entry)
        del mods
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    _speedups(result)
    return result


def _baseline(result: dict) -> str:
    return result.get("baseline", BASELINE)  # JSON written before the step took --dtype: bf16


def _kernel_name(mod: torch.nn.Module, baseline: str = BASELINE) -> str:
    k = getattr(mod, "kernel", None)
    return k.full_name() if k is not None else f"torch.F.linear[{baseline}]"


def _speedups(result: dict) -> None:
    base = next((s for s in result["schemes"] if s["scheme"] == _baseline(result) and "results" in s), None)
    if base is None:
        return
    by_m = {r["m"]: r for r in base["results"]}
    for s in result["schemes"]:
        for r in s.get("results", []):
            b = by_m.get(r["m"], {})
            for key in ("graph_us", "eager_us"):
                if r.get(key) and b.get(key):
                    r[f"speedup_{key[:-3]}"] = round(b[key] / r[key], 3)
            if r.get("per_shape_graph_us") and b.get("per_shape_graph_us"):
                r["per_shape_speedup"] = {role: round(b["per_shape_graph_us"][role] / t, 3)
                                          for role, t in r["per_shape_graph_us"].items() if t}


def format_table(result: dict) -> str:
    key = "graph" if any("graph_us" in r for s in result["schemes"] for r in s.get("results", [])) else "eager"
    ms = result["ms"]
    head = f"{'scheme':<22}" + "".join(f"{'M=' + str(m):>16}" for m in ms)
    lines = [f"decode step ({result['model']}, {result['layers']} layers), {key} µs (speedup over "
             f"{_baseline(result)}); "
             f"{result['machine'].get('gpu') or result['machine'].get('cpu')}", head]
    for s in result["schemes"]:
        if "error" in s:
            lines.append(f"{s['scheme']:<22}  {s['error'][:100]}")
            continue
        cells = []
        for r in s["results"]:
            t, sp = r.get(f"{key}_us"), r.get(f"speedup_{key}")
            cells.append(f"{t:>9.0f} ({sp:.2f})" if t and sp else f"{'err' if 'error' in r else '-':>16}")
        lines.append(f"{s['scheme']:<22}" + "".join(f"{c:>16}" for c in cells))
        lines.append(f"{'':<22}kernels: " + ", ".join(f"{r}={k}" for r, k in s["kernels"].items()))
    return "\n".join(lines)


def plot(result: dict, path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - the plot is optional (extra `plot`)
        return None
    from .bench import machine_label

    fig, ax = plt.subplots(figsize=(8, 5))
    for s in result["schemes"]:
        pts = [(r["m"], r.get("speedup_graph") or r.get("speedup_eager")) for r in s.get("results", [])]
        pts = [(m, v) for m, v in pts if v]
        if pts and s["scheme"] != _baseline(result):
            ax.plot(*zip(*pts), marker="o", label=s["scheme"])
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("M (rows per step)")
    ax.set_ylabel(f"step speedup over {_baseline(result)}")
    ax.set_title(f"decode step, {result['model']} x {result['layers']} layers\n{machine_label(result['machine'])}",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(result: dict, out_dir: str, tag: str | None = None) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    path = _stem(result, out_dir, tag) + ".json"
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return [path]


def write(result: dict, out_dir: str, tag: str | None = None) -> list[str]:
    """JSON + PNG (the PNG only where matplotlib is installed)."""
    paths = write_json(result, out_dir, tag)
    png = plot(result, _stem(result, out_dir, tag) + ".png")
    return paths + ([png] if png else [])


def _stem(result: dict, out_dir: str, tag: str | None) -> str:
    return os.path.join(out_dir, tag or f"decode-step-{result['model']}-{result['machine']['device'].split(':')[0]}")
