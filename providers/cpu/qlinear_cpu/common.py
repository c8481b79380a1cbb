"""Small helpers shared by the cpu provider's kernels."""

from __future__ import annotations

import copy
import types

import torch

from . import caps

# Above the torch provider's CPU kernels (20) where measured faster (providers/cpu/README.md).
PRIO = 30

OUT_KINDS = (torch.bfloat16, torch.float16, torch.float32)


class CpuKernelMixin:
    """Gate on the CPU flags; build the extension in ``process_weights_after_loading``."""

    backend = "cpu"
    notes = "JIT-compiles its C++ extension with gcc on first use (cached in $QLINEAR_CACHE_DIR/cpu)"

    @classmethod
    def is_supported(cls, platform=None):
        return caps.gate(platform)

    @staticmethod
    def ext():
        from .build import load_extension

        return load_extension()

    def __deepcopy__(self, memo):
        """A copied layer shares the loaded C++ extension (a module cannot be deep-copied)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, v if isinstance(v, types.ModuleType) else copy.deepcopy(v, memo))
        return new


def as_2d(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.is_contiguous() else x2.contiguous()


def out_dtype(c, x: torch.Tensor) -> torch.dtype:
    dt = getattr(c, "out_type", None) or getattr(c, "out_dtype", None)
    if dt is not None:
        return dt
    return torch.bfloat16 if x.dtype == torch.float8_e4m3fn else x.dtype


def bias_f32(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else bias.float().contiguous()


def new_out(m: int, n: int, dt: torch.dtype) -> torch.Tensor:
    if dt not in OUT_KINDS:
        raise ValueError(f"out dtype: the cpu kernels write bf16, fp16 or fp32, layer wants {dt}")
    return torch.empty(m, n, dtype=dt)
