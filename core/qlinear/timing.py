"""Timing one callable, the way every figure in this project is taken (``qlinear bench``, autotune,
and the tuning tools under ``tools/``).

The rules, and why:
- medians of many calls, after a warmup, with JIT compilation left in the warmup: one slow call
  (a page fault, a compile) must not move the figure;
- the weights rotate over enough copies that their total exceeds the cache, and the inputs over
  several random (never zero) tensors, as a model walking through its layers does: a loop over one
  weight measures the cache, not a decode step (``default_rotation``, ``copies_needed``,
  ``prepare_kernel``, ``make_inputs``);
- GPU figures come from ``triton.testing.do_bench`` when triton is there (CUDA events otherwise),
  and optionally from CUDA-graph replay (no launch gaps, ``graph_us``);
- eager wall time (host and launch costs included: what a decode loop waits for) is ``wall_us``.

This module is what the runtime may import (autotune times candidates with ``time_calls``);
reporting, machine facts and plots are in ``qlinear.bench``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import LayerConfig
from .kernel import LinearKernel
from .layers import make_layer, quantize_layer_params

MiB = 1 << 20
BASELINE_NAME = "torch.F.linear[bf16]"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_bandwidth(device: str | torch.device = "cpu", nbytes: int = 256 * MiB, reps: int = 5) -> float:
    """Copy bandwidth in GB/s (bytes read + bytes written, median of ``reps`` copies of a buffer far
    larger than the cache): the rate a memory-bound GEMM can at best stream its weights at."""
    dev = torch.device(device)
    n = nbytes // 4
    src = torch.rand(n, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults out of the timing
    _sync(dev)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return 2 * n * 4 / statistics.median(times) / 1e9


@dataclass
class Timing:
    median_us: float
    p20_us: float
    p80_us: float
    min_us: float
    iters: int
    method: str
    graph_median_us: float | None = None
    graph_error: str | None = None

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def _summary(times_s: Sequence[float], method: str) -> Timing:
    us = [t * 1e6 for t in times_s]
    return Timing(statistics.median(us), _quantile(us, 0.2), _quantile(us, 0.8), min(us), len(us), method)


def time_calls(step: Callable[[int], object], device: str | torch.device = "cpu", *, warmup: int = 3,
               max_time: float = 1.0, min_iters: int = 5, max_iters: int = 2000, cuda_graph: bool = False,
               graph_calls: int = 8, clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``step(i)`` (call number i; the caller rotates weights and inputs by i) and return the
    median. Warmup calls come first (JIT, autotune and first-touch page faults happen there), then
    timed calls until ``max_time`` seconds or ``max_iters`` calls, at least ``min_iters``.

    CPU: ``clock`` (``perf_counter``; ``time.thread_time`` counts only this thread's CPU time, for
    single-threaded runs on a loaded machine) around each call. CUDA: ``triton.testing.do_bench`` (median) when triton
    is importable, else a CUDA event pair around each call. A kernel slower than the budget gets
    fewer calls (at least one warmup and one timed; ``min_iters`` yields to 3x ``max_time``): the
    result's ``iters`` says how many. ``cuda_graph`` also times replays of a
    graph holding ``graph_calls`` consecutive steps (no launch gaps), reported per call.
    """
    dev = torch.device(device)
    i = 0
    t0 = time.perf_counter()
    # `warmup` calls (a slow kernel stops early, once warmup has used max_time), then more while
    # within 10% of the budget
    while i < warmup and (i == 0 or time.perf_counter() - t0 < max_time):
        step(i)
        i += 1
    while time.perf_counter() - t0 < 0.1 * max_time and i < 4 * max(1, warmup):
        step(i)
        i += 1
    _sync(dev)
    if dev.type != "cuda":
        times: list[float] = []
        start = time.perf_counter()
        deadline, hard = start + max_time, start + 3 * max_time  # min_iters yields to 3x the budget

        def more() -> bool:
            now = time.perf_counter()
            return not times or now < deadline or (len(times) < min_iters and now < hard)

        while len(times) < max_iters and more():
            t0 = clock()
            step(i)
            times.append(clock() - t0)
            i += 1
        return _summary(times, f"{getattr(clock, '__name__', 'clock')} per call, median")
    timing = _time_cuda(step, dev, i, max_time, min_iters, max_iters)
    if cuda_graph:
        try:
            timing.graph_median_us = graph_us(step, dev, calls=graph_calls, max_time=max_time, min_iters=min_iters)
        except Exception as e:  # noqa: BLE001 - a kernel that can't be captured still has its eager figure
            timing.graph_error = f"{type(e).__name__}: {e}"
    return timing


def _time_cuda(step, dev, i0: int, max_time: float, min_iters: int, max_iters: int) -> Timing:
    counter = [i0]

    def fn():
        step(counter[0])
        counter[0] += 1

    try:
        from triton.testing import do_bench  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - triton absent or broken: fall back to CUDA events
        do_bench = None
    if do_bench is not None:
        rep = max(10, int(max_time * 1000))  # ms
        try:  # median and the 20/80 % quantiles in one go (triton >= 2.1)
            med, p20, p80 = (float(v) * 1e3 for v in do_bench(fn, warmup=25, rep=rep, quantiles=[0.5, 0.2, 0.8]))
        except TypeError:
            med = p20 = p80 = float(do_bench(fn, warmup=25, rep=rep, return_mode="median")) * 1e3
        return Timing(med, p20, p80, p20, -1, "triton.testing.do_bench median (L2 flushed per call)")
    starts, ends = [], []
    start = time.perf_counter()
    deadline, hard = start + max_time, start + 3 * max_time
    while len(starts) < max_iters and (not starts or time.perf_counter() < deadline
                                       or (len(starts) < min_iters and time.perf_counter() < hard)):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        starts.append(s)
        ends.append(e)
        if len(starts) % 64 == 0:
            torch.cuda.synchronize(dev)  # keep the queue (and the deadline check) honest
    torch.cuda.synchronize(dev)
    return _summary([s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)], "CUDA events per call, median")


def graph_us(step: Callable[[int], object], device: str | torch.device = "cuda", *, calls: int = 8,
             reps: int | None = None, max_time: float = 1.0, min_iters: int = 5) -> float:
    """Median µs per call of replaying one CUDA graph that holds ``calls`` consecutive ``step(j)``
    (j = 0 .. calls-1: the caller rotates weights and inputs by j), so no launch gap is counted.

    The steps run first on a side stream (torch's rule before a capture; it also keeps JIT compiles
    and lazy allocations out of the graph). ``reps`` replays when given, else replays until
    ``max_time`` seconds (at least ``min_iters``, at most 1000); each replay is timed with a CUDA
    event pair and divided by ``calls``."""
    dev = torch.device(device)
    stream = torch.cuda.Stream(dev)
    stream.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(stream):
        for j in range(max(calls, 2)):
            step(j % calls)
    torch.cuda.current_stream(dev).wait_stream(stream)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for j in range(calls):
            step(j)
    g.replay()
    torch.cuda.synchronize(dev)
    times: list[float] = []
    deadline = time.perf_counter() + max_time

    def more() -> bool:
        if reps is not None:
            return len(times) < reps
        return len(times) < min_iters or (time.perf_counter() < deadline and len(times) < 1000)

    while more():
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        g.replay()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3 / calls)
    del g
    return statistics.median(times)


def wall_us(fn: Callable[[], object], device: str | torch.device = "cpu", *, calls: int = 1, reps: int = 7,
            warmup: int = 3, stat: str = "median") -> float:
    """Eager wall time per call: ``calls`` back-to-back ``fn()`` and one device sync, timed with
    ``perf_counter`` from the first Python call to the device being done, divided by ``calls``; the
    median (or ``stat="min"``: the fastest, for host-only costs on a shared machine, whose noise is
    one-sided) over ``reps``. What a decode loop sees, launch and host costs included, where
    ``time_calls`` on CUDA measures device time. ``warmup`` calls first (compiles, caches)."""
    if stat not in ("median", "min"):
        raise ValueError(f"stat: {stat!r} is not 'median' or 'min'")
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(dev)
        out.append((time.perf_counter() - t0) * 1e6 / calls)
    return min(out) if stat == "min" else statistics.median(out)


# ============================================================================================
# Layers to time: weight copies, inputs
# ============================================================================================
def tensor_bytes(params: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in params.values() if isinstance(t, torch.Tensor))


def copies_needed(bytes_per_copy: int, target_bytes: int, min_copies: int, max_copies: int) -> int:
    """How many weight copies to rotate over so that their total exceeds ``target_bytes``."""
    need = math.ceil(target_bytes / max(1, bytes_per_copy))
    return max(min_copies, min(max_copies, need))


def default_rotation(device: torch.device) -> tuple[int, int]:
    """(target bytes, minimum copies) of the weight rotation. CPU: >= 6 copies and >= 96 MiB (six
    int8 4096x4096 weights); GPU: more than twice the L2 (H100: 50 MB) and >= 2 copies."""
    if device.type == "cuda":
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50 * 10**6
        return max(2 * l2, 64 * MiB), 2
    return 96 * MiB, 6


def make_weights(n: int, k: int, copies: int, seed: int = 0) -> list[torch.Tensor]:
    """``copies`` different float32 weights [N, K] (std 0.02, like a trained layer)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, k, generator=g) * 0.02 for _ in range(copies)]


def make_inputs(m: int, k: int, count: int, dtype: torch.dtype, device, seed: int = 1) -> list[torch.Tensor]:
    """``count`` different random activations [M, K]: never zeros, a few outlier channels."""
    g = torch.Generator().manual_seed(seed + 1000 * m)
    xs = []
    for _ in range(count):
        x = torch.randn(m, k, generator=g)
        x[:, :: max(1, k // 7)] *= 4
        xs.append(x.to(dtype).to(device))
    return xs


@dataclass
class Prepared:
    """One kernel's layers over the weight copies, ready to time."""

    name: str
    kernels: list[LinearKernel]
    layers: list[torch.nn.Module]
    weight_bytes: int  # as-loaded parameter bytes of one copy (what the format must move)

    def step_for(self, xs: list[torch.Tensor]) -> Callable[[int], torch.Tensor]:
        kernels, layers, nc, nx = self.kernels, self.layers, len(self.layers), len(xs)

        def step(i: int) -> torch.Tensor:
            return kernels[i % nc].apply_weights(layers[i % nc], xs[i % nx])

        return step


def quantize_copies(config: LayerConfig, weights: list[torch.Tensor], calib_x: torch.Tensor) -> list[dict]:
    """The as-loaded parameters of every weight copy (on the weights' device; each kernel's layers
    are built from clones of these)."""
    return [quantize_layer_params(config, w, calib_x=calib_x) for w in weights]


def prepare_kernel(kernel_cls: type[LinearKernel], config: LayerConfig, params_copies: list[dict],
                   device) -> Prepared:
    """Build one layer (and one kernel instance) per weight copy and re-lay it for the kernel.
    The params are cloned: ``process_weights_after_loading`` may re-lay them in place."""
    kernels, layers = [], []
    for params in params_copies:
        layer = make_layer(config, {n: t.detach().clone().to(device) for n, t in params.items()})
        kern = kernel_cls.create(config)
        kern.process_weights_after_loading(layer)
        kernels.append(kern)
        layers.append(layer)
    return Prepared(kernel_cls.full_name(), kernels, layers, tensor_bytes(params_copies[0]))


def prepare_baseline(weights: list[torch.Tensor], dtype: torch.dtype, device) -> Prepared:
    """The bf16 (or given dtype) ``F.linear`` baseline over the same weight copies."""
    ws = [w.to(dtype).to(device) for w in weights]

    class _Linear:  # the same step interface as a kernel, so it is timed the same way
        def apply_weights(self, layer, x):
            return F.linear(x, layer)

    return Prepared(BASELINE_NAME if dtype == torch.bfloat16 else f"torch.F.linear[{str(dtype)[6:]}]",
                    [_Linear()] * len(ws), ws, ws[0].numel() * ws[0].element_size())  # type: ignore[list-item]


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    o, r = out.detach().double().cpu(), ref.detach().double().cpu()
    return float((o - r).norm() / r.norm().clamp(min=1e-30))


__all__ = [
    "BASELINE_NAME", "MiB", "Prepared", "Timing", "copies_needed", "default_rotation", "graph_us", "make_inputs",
    "make_weights", "measure_bandwidth", "prepare_baseline", "prepare_kernel", "quantize_copies", "rel_error",
    "tensor_bytes", "time_calls", "wall_us",
]
