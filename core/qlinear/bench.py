"""``qlinear bench``: every usable kernel over M beside the bf16 ``F.linear`` baseline, reported as
a table, JSON and a PNG (bench/README.md describes the method).

The timing itself (medians after warmup, rotated weights and inputs) is ``qlinear.timing``, which
the runtime may import; this module adds what a report needs and the runtime does not:
- every kernel and the bf16 ``F.linear`` baseline run in one process on the same inputs;
- the result names its machine (CPU model / GPU, threads, torch version, date) and the memory floor
  (bytes that must move / bandwidth) beside each figure.

What is timed is ``kernel.apply_weights(layer, x)``: the GEMM path a model runs, without the input
checks of ``kernel.apply`` (those are Python-side and would inflate small-M figures).
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import math
import os
import platform as _pyplatform
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch

from .config import LayerConfig
from .families import act_dtype, family_of, out_dtype
from .kernel import LinearKernel
from .layers import quantize_layer_params
from .timing import (  # noqa: F401 - re-exported: ``qlinear.bench`` kept these names
    BASELINE_NAME, MiB, Prepared, Timing, _sync, copies_needed, default_rotation, make_inputs, make_weights,
    measure_bandwidth, prepare_baseline, prepare_kernel, quantize_copies, rel_error, tensor_bytes, time_calls,
)


# ============================================================================================
# The machine
# ============================================================================================
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return _pyplatform.processor() or _pyplatform.machine()


def _l3_bytes() -> int | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            s = f.read().strip()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
        return int(s.rstrip("KMGkmg")) * mult
    except (OSError, ValueError):
        return None


def machine_info(device: str | torch.device = "cpu") -> dict:
    """What a figure must name: CPU model / GPU, threads, torch version, date (UTC)."""
    dev = torch.device(device)
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(dev),
        "cpu": _cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "l3_cache_bytes": _l3_bytes(),
        "python": _pyplatform.python_version(),
        "torch": torch.__version__,
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(gpu=props.name, gpu_sms=props.multi_processor_count,
                    gpu_l2_bytes=getattr(props, "L2_cache_size", None),
                    cuda=torch.version.cuda or getattr(torch.version, "hip", None))
    try:  # provider versions, so a figure can be traced to the code that made it
        from .registry import get_registry

        info["providers"] = {n: p.version for n, p in get_registry().providers.items()}
    except Exception:  # noqa: BLE001 - a broken registry must not stop a benchmark's bookkeeping
        pass
    return info


def machine_label(info: dict) -> str:
    """One line for plot titles and table headers."""
    where = info.get("gpu") or info.get("cpu", "?")
    if info.get("device", "cpu").startswith("cpu"):
        where += f", {info.get('torch_threads')} threads"
    return f"{where}; torch {info.get('torch')}; {info.get('date')}"


# ============================================================================================
# The kernel set and the figures' units
# ============================================================================================
def matches(name: str, patterns: Sequence[str]) -> bool:
    """True if the kernel's full name (``provider.Class``) or class name matches any glob."""
    short = name.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(short, p) for p in patterns)


def io_bytes(m: int, n: int, k: int, act_dtype: torch.dtype, out_dtype: torch.dtype) -> int:
    e = lambda dt: torch.empty((), dtype=dt).element_size()  # noqa: E731
    return m * k * e(act_dtype) + m * n * e(out_dtype)


def layer_label(c: LayerConfig) -> str:
    """``N=4096 K=4096 bfloat16, uint4b8 group 128``: a config's key facts on one line."""
    n, k = c.shape_nk
    return f"N={n} K={k} {str(act_dtype(c)).removeprefix('torch.')}{family_of(c).summary(c)}"


def out_dtype_of(config: LayerConfig) -> torch.dtype:
    return out_dtype(config)


# ============================================================================================
# Progress bar (stderr, no dependency)
# ============================================================================================
class Progress:
    """A one-line stderr bar: ``[#####-----] 12/40 label``. Silent when disabled (not a TTY)."""

    def __init__(self, total: int, enabled: bool | None = None, width: int = 28, stream=None) -> None:
        self.total, self.done, self.width = max(1, total), 0, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def update(self, label: str = "", step: int = 1) -> None:
        self.done = min(self.total, self.done + step)
        if not self.enabled:
            return
        fill = int(self.width * self.done / self.total)
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else 0.0
        line = f"\r[{'#' * fill}{'-' * (self.width - fill)}] {self.done}/{self.total} {el:5.0f}s eta {eta:4.0f}s {label}"
        self.stream.write(line[:150].ljust(150))
        self.stream.flush()

    def write(self, msg: str) -> None:
        """A log line above the bar (the bar redraws on the next update)."""
        if self.enabled:
            self.stream.write("\r" + msg.ljust(150) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# ============================================================================================
# A whole run: schemes x usable kernels x M, plus the baseline
# ============================================================================================
@dataclass
class BenchSpec:
    n: int = 4096
    k: int = 4096
    ms: Sequence[int] = (1, 8, 32, 128)
    schemes: Sequence[tuple[str, LayerConfig]] = ()  # (name, config) pairs
    kernels: Sequence[str] = ()  # globs to keep (empty: all)
    exclude: Sequence[str] = ()  # globs to drop
    device: str = "cpu"
    baseline_dtype: torch.dtype = torch.bfloat16
    max_time: float = 1.0  # seconds of timed calls per (kernel, M), after warmup
    warmup: int = 3
    inputs: int = 4  # different activations rotated per M
    rotate_bytes: int | None = None  # weight copies total at least this (default per device)
    min_copies: int | None = None
    max_copies: int = 64
    bandwidth_gbs: float | None = None  # None: measured
    tflops: float | None = None  # matrix rate for the compute floor (None: not reported)
    cuda_graph: bool = False
    seed: int = 0


def _platform_for(device: torch.device):
    from .platform import current_platform, make_platform

    plat = current_platform()
    if device.type == "cpu" and plat.kind != "cpu":  # --device cpu on a GPU machine: CPU kernels only
        return make_platform(None, kind="cpu", capability=None, device_name="")
    return plat


def run_bench(spec: BenchSpec, progress: Progress | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Time every usable kernel of every scheme, and the baseline, on the same inputs. Returns the
    JSON-able result (``plot`` draws it, ``format_table`` prints it)."""
    import gc

    from .selection import select

    dev = torch.device(spec.device)
    plat = _platform_for(dev)
    log = log or (lambda s: None)
    target, min_copies = default_rotation(dev)
    target = spec.rotate_bytes or target
    min_copies = spec.min_copies or min_copies
    bw_source = "given (--bandwidth)"
    bw = spec.bandwidth_gbs
    if bw is None:
        bw, bw_source = measure_bandwidth(dev), "measured (copy of a 256 MiB buffer, read+write)"
    result: dict = {
        "machine": machine_info(dev), "n": spec.n, "k": spec.k, "ms": list(spec.ms),
        "bandwidth_gbs": round(bw, 2), "bandwidth_source": bw_source, "tflops": spec.tflops,
        "method": {
            "timed": "kernel.apply_weights(layer, x) (no input checks), output discarded",
            "statistic": "median", "warmup_calls": spec.warmup, "max_time_s_per_point": spec.max_time,
            "inputs_rotated": spec.inputs, "rotate_target_bytes": target, "min_copies": min_copies,
            "max_copies": spec.max_copies, "cuda_graph": spec.cuda_graph,
            "floor": "memory floor = (as-loaded weight+scale bytes + x bytes + out bytes) / bandwidth",
        },
        "settings": _settings(), "baseline": [], "schemes": [],
    }

    # 1. what runs: selection per scheme (every kernel gated, as doctor does)
    plans = []
    for name, config in spec.schemes:
        sel = select(config, plat, raise_on_failure=False, evaluate_all=True)
        entry = {"scheme": name, "family": config.family, "layer": layer_label(config), "config": config.describe(),
                 "selected": sel.kernel.full_name() if sel.kernel else None, "results": [], "skipped": []}
        run = []
        for kcls in sel.order + [k for k in _registered(config, plat) if k not in sel.order]:
            fn = kcls.full_name()
            if kcls not in sel.viable:
                entry["skipped"].append({"kernel": fn, "reason": sel.reasons.get(fn, "not usable here")})
            elif spec.kernels and not matches(fn, spec.kernels):
                entry["skipped"].append({"kernel": fn, "reason": "not matched by --kernels"})
            elif spec.exclude and matches(fn, spec.exclude):
                entry["skipped"].append({"kernel": fn, "reason": "excluded by --exclude"})
            else:
                run.append(kcls)
        plans.append((config, entry, run))
        result["schemes"].append(entry)
    progress = progress or Progress(0, enabled=False)
    progress.total = max(1, (1 + sum(len(r) for _, _, r in plans)) * len(spec.ms))

    # 2. weights (float32, CPU) shared by every scheme, inputs per M shared by every kernel
    n, k = spec.n, spec.k
    weights: list[torch.Tensor] = []

    def weights_upto(count: int) -> list[torch.Tensor]:
        if len(weights) < count:
            weights.extend(make_weights(n, k, count - len(weights), seed=spec.seed + len(weights)))
        return weights[:count]

    base_dtype = spec.baseline_dtype
    xs_by_m: dict[tuple[int, torch.dtype], list[torch.Tensor]] = {}

    def inputs(m: int, dtype: torch.dtype) -> list[torch.Tensor]:
        if (m, dtype) not in xs_by_m:
            xs_by_m[(m, dtype)] = make_inputs(m, k, spec.inputs, dtype, dev, seed=spec.seed + 1)
        return xs_by_m[(m, dtype)]

    w0: list[torch.Tensor] = []

    def ref_out(x: torch.Tensor) -> torch.Tensor:  # fp32 x @ W0^T: what every kernel approximates
        if not w0:
            w0.append(weights[0].to(dev))
        return x.float() @ w0[0].t()

    def measure(prep: Prepared, m: int, dtype: torch.dtype, wbytes: int, out_dtype: torch.dtype) -> dict:
        xs = inputs(m, dtype)
        step = prep.step_for(xs)
        row: dict = {"kernel": prep.name, "m": m, "copies": len(prep.layers)}
        try:
            t0 = time.perf_counter()
            out = step(0)  # the first call (JIT, compile, autotune) and the accuracy check
            _sync(dev)
            first = time.perf_counter() - t0
            row["rel_err_vs_fp32"] = round(rel_error(out, ref_out(xs[0])), 5)
            # a kernel slower than the budget has had its warmup in that first call
            warm = spec.warmup if first < spec.max_time else 0
            t = time_calls(step, dev, warmup=warm, max_time=spec.max_time, cuda_graph=spec.cuda_graph,
                           graph_calls=min(64, max(len(prep.layers), spec.inputs)))  # a graph spans the rotation
            row.update(t.as_dict())
        except Exception as e:  # noqa: BLE001 - one broken kernel must not end the run
            row["error"] = f"{type(e).__name__}: {e}"
            row["median_us"] = None
        moved = wbytes + io_bytes(m, n, k, dtype, out_dtype)
        row["bytes_moved"] = moved
        row["floor_us"] = round(moved / (bw * 1e9) * 1e6, 3)
        if spec.tflops:
            row["compute_floor_us"] = round(2 * m * n * k / (spec.tflops * 1e12) * 1e6, 3)
            row["bound"] = "memory" if row["floor_us"] >= row["compute_floor_us"] else "compute"
        return row

    # 3. the baseline
    bbytes = n * k * torch.empty((), dtype=base_dtype).element_size()
    bcopies = copies_needed(bbytes, target, min_copies, spec.max_copies)
    result["baseline_copies"] = bcopies
    log(f"baseline {BASELINE_NAME}: {bcopies} weight copies")
    prep = prepare_baseline(weights_upto(bcopies), base_dtype, dev)
    for m in spec.ms:
        progress.update(f"{prep.name} M={m}", 0)
        result["baseline"].append(measure(prep, m, base_dtype, bbytes, base_dtype))
        progress.update(f"{prep.name} M={m}")
    del prep

    # 4. the kernels
    for config, entry, run in plans:
        if not run:
            continue
        dtype, odt = act_dtype(config), out_dtype(config)
        # quantized on the bench device (the formats are plain torch): far faster than CPU on a GPU box
        calib = make_inputs(16, k, 1, torch.float32, dev, seed=spec.seed + 7)[0]
        probe = quantize_layer_params(config, weights_upto(1)[0].to(dev), calib_x=calib)
        wbytes = tensor_bytes(probe)
        copies = copies_needed(wbytes, target, min_copies, spec.max_copies)
        log(f"{entry['scheme']}: {copies} weight copies of {wbytes / MiB:.1f} MiB")
        params = [probe] + quantize_copies(config, [w.to(dev) for w in weights_upto(copies)[1:]], calib)
        entry["weight_bytes"], entry["copies"] = wbytes, copies
        if copies * wbytes < target:  # capped by max_copies: say so rather than pass off a cached figure
            entry["note"] = (f"weight copies total {copies * wbytes / MiB:.1f} MiB < {target / MiB:.0f} MiB target "
                             f"(max_copies={spec.max_copies}): figures may include cache hits")
        for kcls in run:
            try:
                prep = prepare_kernel(kcls, config, params, dev)
            except Exception as e:  # noqa: BLE001
                entry["results"].append({"kernel": kcls.full_name(), "error": f"preparing: {type(e).__name__}: {e}",
                                         "median_us": None})
                progress.update(kcls.full_name(), len(spec.ms))
                continue
            for m in spec.ms:
                progress.update(f"{entry['scheme']} {prep.name} M={m}", 0)
                entry["results"].append(measure(prep, m, dtype, wbytes, odt))
                progress.update(f"{entry['scheme']} {prep.name} M={m}")
            del prep
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        del params
    progress.close()
    return result


def _settings() -> dict:
    from .settings import get_settings

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(get_settings()).items()}


def _registered(config: LayerConfig, plat) -> list[type[LinearKernel]]:
    from .registry import get_registry

    return get_registry().kernels(config.family, plat.kind)


def format_table(result: dict) -> str:
    """A plain-text table: one block per scheme, kernels x M, median µs and the speedup over bf16."""
    ms = result["ms"]
    base = {r["m"]: r.get("median_us") for r in result["baseline"]}
    gbase = {r["m"]: r["graph_median_us"] for r in result["baseline"] if r.get("graph_median_us") is not None}
    w = 46
    lines = [f"qlinear bench  N={result['n']} K={result['k']}  ({machine_label(result['machine'])})",
             f"median µs per call; (x.xx) = speedup over {BASELINE_NAME}; bandwidth {result['bandwidth_gbs']} GB/s "
             f"{result['bandwidth_source'].split(' (')[0]}"]
    head = f"  {'kernel':<{w}}" + "".join(f"{'M=' + str(m):>18}" for m in ms) + f"{'rel.err vs fp32':>18}"

    def err_cell(rows) -> str:  # the worst over M; a broken kernel's speed means nothing
        errs = [r["rel_err_vs_fp32"] for r in rows if r.get("rel_err_vs_fp32") is not None]
        if not errs:
            return ""
        e = max(errs)
        return f"{e:>18.4f}" + ("  <-- WRONG RESULTS" if e > 0.5 else "")

    def cell(v, m, speed=True):
        if v is None:
            return f"{'error':>18}"
        s = f"{v:.1f}" if v < 1000 else f"{v:.0f}"
        if speed and base.get(m):
            s += f" ({base[m] / v:.2f})"
        return f"{s:>18}"

    for sch in result["schemes"]:
        lines += ["", f"{sch['scheme']}: {sch['layer']}  (selected here: {sch['selected']}; "
                      f"{sch.get('copies', '-')} weight copies)"]
        if sch.get("note"):
            lines.append(f"  note: {sch['note']}")
        lines.append(head)
        lines.append(f"  {BASELINE_NAME + ' (baseline)':<{w}}" + "".join(cell(base.get(m), m, False) for m in ms)
                     + err_cell(result["baseline"]))
        if gbase:
            lines.append(f"  {'  ... under CUDA-graph replay':<{w}}" + "".join(cell(gbase.get(m), m, False) for m in ms))
        by_k: dict[str, dict[int, dict]] = {}
        for r in sch["results"]:
            by_k.setdefault(r["kernel"], {})[r.get("m")] = r
        for name, rows in by_k.items():
            lines.append(f"  {name:<{w}}" + "".join(cell(rows.get(m, {}).get("median_us"), m) for m in ms)
                         + err_cell(list(rows.values())))
            if any(r.get("graph_median_us") is not None for r in rows.values()):
                lines.append(f"  {'  ... under CUDA-graph replay':<{w}}" + "".join(
                    cell(rows.get(m, {}).get("graph_median_us"), m, False) for m in ms))
            errs = sorted({r["error"] for r in rows.values() if r.get("error")})
            lines += [f"    error: {e}" for e in errs]
        floors = {r["m"]: r["floor_us"] for r in sch["results"] if r.get("floor_us") is not None}
        if floors:
            lines.append(f"  {'memory floor (format bytes / bandwidth)':<{w}}" + "".join(cell(floors.get(m), m, False) for m in ms))
        for s in sch["skipped"]:
            lines.append(f"  - {s['kernel']}: {s['reason']}")
    return "\n".join(lines)


# ============================================================================================
# Plot
# ============================================================================================
def plot(result: dict, path: str) -> str:
    """Draw median µs vs M (log-log), one panel per scheme: every kernel, the bf16 baseline and the
    memory floor. Needs matplotlib (``pip install qlinear[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError(f"the PNG plot needs matplotlib ({e}); install it with `pip install 'qlinear[plot]'` "
                           "or pass --no-plot") from e
    schemes = result["schemes"]
    cols = min(3, max(1, len(schemes)))
    rows = math.ceil(max(1, len(schemes)) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    base = result.get("baseline", [])
    for ax, sch in zip(axes.flat, schemes):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in sch["results"] + base:
            if r.get("graph_median_us") is not None:  # graph replay figures, drawn thin beside the eager ones
                series.setdefault(r["kernel"] + " [graph]", []).append((r["m"], r["graph_median_us"]))
        for r in sch["results"]:
            if r.get("median_us") is not None:
                series.setdefault(r["kernel"], []).append((r["m"], r["median_us"]))
        for name, pts in sorted(series.items()):
            pts.sort()
            label = name + (" (selected)" if name == sch.get("selected") else "")
            graph = name.endswith("[graph]")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if graph else "o", lw=0.8 if graph else 1.5,
                    ls="-." if graph else "-", label=label)
        bpts = sorted((r["m"], r["median_us"]) for r in base if r.get("median_us") is not None)
        if bpts:
            ax.plot([p[0] for p in bpts], [p[1] for p in bpts], "k--", marker="s", label=BASELINE_NAME)
        floor = {}
        for r in sch["results"]:
            if r.get("floor_us") is not None:
                floor[r["m"]] = min(floor.get(r["m"], math.inf), r["floor_us"])
        if floor:
            fm = sorted(floor)
            ax.plot(fm, [floor[m] for m in fm], ":", color="gray", label="memory floor")
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["ms"], [str(m) for m in result["ms"]])
        ax.set_yscale("log")
        ax.set_xlabel("M (tokens)")
        ax.set_ylabel("median µs per call")
        ax.set_title(f"{sch['scheme']}  N={result['n']} K={result['k']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(schemes):]:
        ax.axis("off")
    fig.suptitle(f"qlinear bench — {machine_label(result['machine'])}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "BASELINE_NAME", "BenchSpec", "format_table", "run_bench", "Prepared", "Progress", "Timing", "copies_needed", "default_rotation", "io_bytes",
    "machine_info", "machine_label", "make_inputs", "make_weights", "matches", "measure_bandwidth", "plot",
    "prepare_baseline", "prepare_kernel", "quantize_copies", "rel_error", "tensor_bytes", "time_calls",
]
