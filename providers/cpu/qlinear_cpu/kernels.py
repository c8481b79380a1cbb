"""Every kernel class of the cpu provider (what the ``qlinear_kernels`` hook returns)."""

from __future__ import annotations

from .fp8 import CpuAmxFp8BlockScaledMMLinearKernel, CpuAmxFP8ScaledMMLinearKernel
from .int8 import CpuAmxInt8ScaledMMLinearKernel
from .mp import CpuAmxWNA16LinearKernel
from .w4a8 import CpuAmxW4A8LinearKernel

KERNELS = [CpuAmxWNA16LinearKernel, CpuAmxInt8ScaledMMLinearKernel, CpuAmxFP8ScaledMMLinearKernel,
           CpuAmxFp8BlockScaledMMLinearKernel, CpuAmxW4A8LinearKernel]
