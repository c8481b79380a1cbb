"""Every kernel class of the torch provider (what the ``qlinear_kernels`` hook returns)."""

from __future__ import annotations

from .fp8 import (
    TorchCpuFP8ScaledMMLinearKernel,
    TorchCudaChannelWiseFP8ScaledMMLinearKernel,
    TorchCudaPerTensorFP8ScaledMMLinearKernel,
    TorchCudaRowWiseFP8ScaledMMLinearKernel,
)
from .fp8_block import TorchCudaFp8BlockScaledMMLinearKernel
from .mp import (
    TorchCpuW4A16LinearKernel,
    TorchCpuW8A16LinearKernel,
    TorchCudaW4A16LinearKernel,
    TorchCudaW8A16LinearKernel,
)
from .int8 import TorchCpuInt8ScaledMMLinearKernel, TorchCudaInt8ScaledMMLinearKernel

KERNELS = [
    TorchCpuInt8ScaledMMLinearKernel,
    TorchCudaInt8ScaledMMLinearKernel,
    TorchCpuFP8ScaledMMLinearKernel,
    TorchCudaPerTensorFP8ScaledMMLinearKernel,
    TorchCudaRowWiseFP8ScaledMMLinearKernel,
    TorchCudaChannelWiseFP8ScaledMMLinearKernel,
    TorchCudaFp8BlockScaledMMLinearKernel,
    TorchCpuW4A16LinearKernel,
    TorchCudaW4A16LinearKernel,
    TorchCpuW8A16LinearKernel,
    TorchCudaW8A16LinearKernel,
]


def compile_report() -> dict[str, str]:
    """Which activation-quant / epilogue functions run compiled, and why the others run eager."""
    from . import compiled

    return dict(compiled.STATUS)
