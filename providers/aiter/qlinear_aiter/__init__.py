"""The aiter provider: AMD ROCm GEMMs from aiter (``amd-aiter``) for MI300 (gfx942) and MI350/355
(gfx950) — INT8 and FP8 per-token through CK, pre-shuffled FP8 through CK, per-tensor FP8 through
hipBLASLt, block FP8 through CK, MXFP4 (gfx950) through aiter's Triton FP4 GEMM.

Importing this package (and discovering it) imports torch and qlinear only; ``aiter`` is imported
by a kernel's ``is_supported`` after the ROCm and gfx-arch checks pass, or at first use
(``library.py``). None of these kernels has been run on a ROCm GPU by this project: their gates,
weight/scale re-layouts and call plumbing are tested on CPU; the GEMMs themselves are unverified.
"""

from qlinear import hookimpl

__all__ = ["kernels", "qlinear_kernels"]


def kernels() -> list:
    from .fp8 import AiterFp8CKLinearKernel, AiterFp8HipblasltLinearKernel, AiterFp8PreshuffledLinearKernel
    from .fp8_block import AiterFp8BlockScaledLinearKernel
    from .int8 import AiterInt8ScaledMMLinearKernel
    from .mxfp4 import AiterMxFp4LinearKernel

    return [
        AiterInt8ScaledMMLinearKernel,
        AiterFp8CKLinearKernel,
        AiterFp8PreshuffledLinearKernel,
        AiterFp8HipblasltLinearKernel,
        AiterFp8BlockScaledLinearKernel,
        AiterMxFp4LinearKernel,
    ]


@hookimpl
def qlinear_kernels():
    return kernels()
