"""What every tuning tool here times with: ``qlinear.timing`` (the one harness ``qlinear bench`` and
autotune use), plus the few things a tool adds: a ``Timer`` that can also run each op once without
timing (``--smoke`` on CPU, ``--warm-only`` to fill the Triton cache), and rotated layer copies.

Rules (those of ``qlinear.timing``): warmup first, median of timed calls, weights rotated over enough
copies that their total exceeds the cache, CUDA figures from ``triton.testing.do_bench`` (or CUDA
events), graph figures from a CUDA graph over the rotation (no launch gaps).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from qlinear.layers import quantize_layer_params
from qlinear.timing import copies_needed, default_rotation, prepare_kernel, rel_error, time_calls

__all__ = ["Timer", "copies_for", "make_layers", "rel_error"]


def copies_for(nbytes: int, device: str | torch.device = "cuda", min_copies: int | None = None,
               max_copies: int = 256) -> int:
    """Weight copies of ``nbytes`` each to rotate over, so that their total exceeds the cache."""
    target, floor = default_rotation(torch.device(device))
    return copies_needed(nbytes, target, min_copies or floor, max_copies)


def make_layers(kernel_cls, config, w: torch.Tensor, copies: int, calib: torch.Tensor | None = None):
    """``copies`` layers of ``w`` quantized for ``config`` and re-laid by ``kernel_cls`` (on ``w``'s
    device). Returns (as-loaded params, layers, kernels)."""
    params = quantize_layer_params(config, w, calib_x=calib)
    prep = prepare_kernel(kernel_cls, config, [params] * copies, w.device)
    return params, prep.layers, prep.kernels


class Timer:
    """``timer(fn, copies)`` -> median µs of ``fn(i)`` (call i uses copy ``i % copies``).

    mode ``"time"``: measured with ``qlinear.timing.time_calls``; ``graph=True`` gives the per-call
    time under CUDA-graph replay of the whole rotation. Mode ``"once"``: each op runs once and 0.0
    is returned (checks a script end to end, or compiles every kernel, without timing anything).
    ``stat="min"`` reports the fastest call instead of the median (a contended CPU); ``clock`` is the
    CPU clock (``time.thread_time`` with one thread: immune to other processes preempting us).
    """

    def __init__(self, device: str | torch.device = "cuda", mode: str = "time", max_time: float = 0.3,
                 warmup: int = 3, stat: str = "median", clock: Callable[[], float] = time.perf_counter) -> None:
        if mode not in ("time", "once"):
            raise ValueError(f"mode: {mode!r} is not 'time' or 'once'")
        if stat not in ("median", "min"):
            raise ValueError(f"stat: {stat!r} is not 'median' or 'min'")
        self.device, self.mode, self.max_time, self.warmup, self.stat = torch.device(device), mode, max_time, warmup, stat
        self.clock = clock

    @property
    def timing(self) -> bool:
        return self.mode == "time"

    def __call__(self, fn: Callable[[int], object], copies: int = 1, graph: bool = False) -> float:
        if not self.timing:
            fn(0)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return 0.0
        t = time_calls(lambda i: fn(i % copies), self.device, warmup=self.warmup, max_time=self.max_time,
                       cuda_graph=graph, graph_calls=max(copies, 1), clock=self.clock)
        if graph:
            if t.graph_median_us is None:
                raise RuntimeError(f"CUDA graph capture failed: {t.graph_error}")
            return t.graph_median_us
        return t.min_us if self.stat == "min" else t.median_us
