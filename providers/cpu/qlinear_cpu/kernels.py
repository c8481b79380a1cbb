"""Every kernel class of the cpu provider (what the ``qlinear_kernels`` hook returns)."""

from __future__ import annotations

from .int8 import CpuAmxInt8ScaledMMLinearKernel
from .mp import CpuAmxWNA16LinearKernel

KERNELS = [CpuAmxWNA16LinearKernel, CpuAmxInt8ScaledMMLinearKernel]
