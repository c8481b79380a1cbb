"""What every triton kernel class shares: its names, priority and the platform gate."""

from __future__ import annotations

import torch

from qlinear.families import out_dtype as out_dtype_of  # noqa: F401 - the kernels' output dtype rule
from qlinear.platform import resolve_platform

from .runtime import triton_import_error

PRIORITY = 20  # below library kernels tuned per GPU (marlin, cutlass, fbgemm); above torch / emulation


class TritonKernelMixin:
    provider = "triton"
    backend = "triton"
    priority = PRIORITY
    batch_invariant = False  # tile shapes are chosen per M bucket, so a row's sum order depends on M
    needs_fp8 = False  # FP8 tensor-core dots need cc >= 89 on CUDA

    @classmethod
    def is_supported(cls, platform=None):
        p = resolve_platform(platform)
        if not p.is_cuda_alike():
            return False, f"needs a CUDA or ROCm GPU, platform is {p.kind}"
        if cls.needs_fp8:
            if p.is_rocm():
                # MI300 uses fp8 e4m3fnuz, a different encoding from the e4m3fn these layers store
                return False, "FP8 on ROCm (e4m3fnuz) is not implemented by the triton provider"
            if not p.has_capability(89):
                return False, f"needs CUDA cc>=89 for FP8, have {p.capability}"
        elif p.is_cuda() and not p.has_capability(80):
            # bf16 tensor-core dots (and Triton's tested paths) start at Ampere
            return False, f"needs CUDA cc>=80, have {p.capability}"
        err = triton_import_error()
        if err is not None:
            return False, f"triton not importable: {err}"
        return True, None

    # ---- tuning hooks for tools/ (after process_weights_after_loading) ----------------------------
    @property
    def tiles(self):
        """The tile chooser this kernel launches with (M -> tile; scaled_mm.launch_scaled_mm takes it)."""
        return self._tiles

    def tile_for(self, m: int):
        """The tile an M-row call runs with."""
        return self._tiles(m)

    def pin_tile(self, tile, splits: int | None = None):
        """Run every M with ``tile`` (a configs.Tile or GemvTile) split into ``splits`` K slices
        (None: the shipped split rule). For tuning sweeps; returns the kernel."""
        from .scaled_mm import FixedTile

        self._tiles = FixedTile(tile, splits, sms=self._tiles.sms)
        return self


IO_DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # the W8A8 kernels' input / output dtypes


def io_dtype_reason(c) -> str | None:
    """Why a W8A8 config's input or output dtype is not one the triton kernels take (None: fine)."""
    if c.input_dtype not in IO_DTYPES:
        return f"input dtype {c.input_dtype} is not float16/bfloat16/float32"
    if c.out_dtype is not None and c.out_dtype not in IO_DTYPES:
        return f"out_dtype {c.out_dtype} is not float16/bfloat16/float32"
    return None

