"""The xpu provider: Intel GPU (``torch.xpu``) GEMMs — W4A16 through torch's XPU int4 ops
(``_convert_weight_to_int4pack`` + ``_weight_int4pack_mm_with_scales_and_zeros``, oneDNN), FP8
through ``torch._scaled_mm`` on XPU, and W4A16 (with act-order) and FP8 through vllm-xpu-kernels'
``int4_gemm_w4a16`` / ``fp8_gemm`` (oneDNN) when that package is installed.

Importing this package imports torch and qlinear only; ``vllm_xpu_kernels`` is imported by its
kernel's ``is_supported`` on an XPU machine, never at discovery. None of these kernels has been run
on an Intel GPU by this project: gates and weight/scale re-layouts are tested on CPU.
"""

from qlinear import hookimpl

__all__ = ["kernels", "qlinear_kernels"]


def kernels() -> list:
    from .fp8 import XpuFp8ScaledMMLinearKernel, XpuKernelsFp8LinearKernel
    from .mp import XpuKernelsW4A16LinearKernel, XpuW4A16LinearKernel

    return [XpuW4A16LinearKernel, XpuKernelsW4A16LinearKernel, XpuFp8ScaledMMLinearKernel, XpuKernelsFp8LinearKernel]


@hookimpl
def qlinear_kernels():
    return kernels()
