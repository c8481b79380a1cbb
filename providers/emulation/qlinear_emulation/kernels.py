"""One emulation kernel class per family, sharing one implementation (``_Emulation``)."""

from __future__ import annotations

import torch

from qlinear import kernel as K
from qlinear.families import out_dtype
from qlinear.formats import reference_linear
from qlinear.formats.reference import dequantize_weight


class _Emulation:
    """Mixin: dequantize the weight once after loading; each call quantizes-dequantizes x and
    multiplies in float32. Every family's config is accepted as-is (the formats check shapes)."""

    provider = "emulation"
    backend = "emulation"
    priority = 0
    batch_invariant = False  # BLAS may block a matmul differently per batch size: not guaranteed

    @classmethod
    def can_implement(cls, c):
        return True, None

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        # Cached in float32: the same float32 dequantization a call would do, so the cache changes
        # no result (it is exact for MP and MX formats; INT8/FP8/NVFP4 round once, as they would per call).
        layer.qlinear_emulation_weight = dequantize_weight(self.config, layer, torch.float32)

    def apply_weights(self, layer, x, bias=None):
        w = getattr(layer, "qlinear_emulation_weight", None)
        out = reference_linear(self.config, layer, x, bias, self.quantizes_activation, torch.float32, weight=w)
        return out.to(out_dtype(self.config, x))


class EmulationMPLinearKernel(_Emulation, K.MPLinearKernel):
    pass


class EmulationInt8ScaledMMLinearKernel(_Emulation, K.Int8ScaledMMLinearKernel):
    pass


class EmulationFP8ScaledMMLinearKernel(_Emulation, K.FP8ScaledMMLinearKernel):
    pass


class EmulationFp8BlockScaledMMLinearKernel(_Emulation, K.Fp8BlockScaledMMLinearKernel):
    pass


class EmulationNvFp4LinearKernel(_Emulation, K.NvFp4LinearKernel):
    pass


class EmulationMxFp4LinearKernel(_Emulation, K.MxFp4LinearKernel):
    pass


class EmulationMxfp8LinearKernel(_Emulation, K.Mxfp8LinearKernel):
    quantizes_activation = False  # vLLM's MXFP8 emulation keeps the activation in 16 bits


class EmulationW4A8LinearKernel(_Emulation, K.W4A8LinearKernel):
    pass


KERNELS = [
    EmulationMPLinearKernel,
    EmulationInt8ScaledMMLinearKernel,
    EmulationFP8ScaledMMLinearKernel,
    EmulationFp8BlockScaledMMLinearKernel,
    EmulationNvFp4LinearKernel,
    EmulationMxFp4LinearKernel,
    EmulationMxfp8LinearKernel,
    EmulationW4A8LinearKernel,
]
