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

__all__ = ["Timer", "copies_for", "gptq_g128_shapes", "make_layers", "rel_error"]


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


def gptq_g128_shapes(kernel_classes, device, shapes, bits: int = 4):
    """Per (name, (N, K)) of ``shapes``: one random weight quantized as GPTQ g128 (``bits`` 4: uint4b8, 8:
    uint8b128; bf16 activations) and re-laid by each class of ``kernel_classes`` (None entries skipped)
    over enough rotated copies to exceed the cache. Yields (name, n, k, copies, {class: (layers, kernels)}, float64 dequantized
    weight, rotated bf16 copies of the float weight); the GPU memory goes when the caller moves on."""
    from qlinear.config import MPLinearLayerConfig
    from qlinear.formats.int_pack import dequantize_wna16
    from qlinear.scalar_type import scalar_types

    dev = torch.device(device)
    for name, (n, k) in shapes.items():
        wt = scalar_types.uint4b8 if bits == 4 else scalar_types.uint8b128
        c = MPLinearLayerConfig((k, n), (k, n), wt, torch.bfloat16, 128, False, False)
        gen = torch.Generator(device=dev).manual_seed(0)
        w = torch.randn(n, k, device=dev, generator=gen) * 0.05
        copies = copies_for(n * k * bits // 8 + n * (k // 128) * 2, dev)
        made, params = {}, None
        for cls in kernel_classes:
            if cls is not None:
                params, layers, kernels = make_layers(cls, c, w, copies)
                made[cls] = (layers, kernels)
        ref_w = dequantize_wna16(c.weight_type, params["weight_packed"], params["weight_scale"], group_size=128,
                                 dtype=torch.float64)
        bf = [w.to(torch.bfloat16).clone() for _ in range(copies_for(2 * n * k, dev))]
        del w
        yield name, n, k, copies, made, ref_w, bf
        del made, bf, ref_w
        if dev.type == "cuda":
            torch.cuda.empty_cache()


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
