"""The flashinfer provider: FP8, block-FP8, NVFP4 (4 backends), MXFP4 and MXFP8 GEMMs from flashinfer-python.

Importing or discovering this package imports torch and qlinear only. flashinfer is imported by a
kernel's ``is_supported`` once the platform checks pass. FlashInfer JIT-compiles its kernels with
nvcc on first use (~34 s bmm_fp8, ~100 s fp8_blockscale_gemm_sm90 on an H100): no kernel calls into
it before its first ``apply``, so import, selection and weight loading never trigger a build.
Weight layouts are pure torch (``layouts.py``).
"""

from qlinear import hookimpl


def kernels() -> list:
    from .fp8 import FlashInferFp8ScaledMMLinearKernel
    from .fp8_block import FlashInferFp8BlockScaledDynamicLinearKernel
    from .mx import FlashInferCutlassMxfp8LinearKernel, FlashInferMxFp4LinearKernel
    from .nvfp4 import (FlashInferB12xNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
                        FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel)

    return [
        FlashInferFp8ScaledMMLinearKernel,
        FlashInferFp8BlockScaledDynamicLinearKernel,
        FlashInferCutlassNvFp4LinearKernel,
        FlashInferTrtllmNvFp4LinearKernel,
        FlashInferCudnnNvFp4LinearKernel,
        FlashInferB12xNvFp4LinearKernel,
        FlashInferMxFp4LinearKernel,
        FlashInferCutlassMxfp8LinearKernel,
    ]


@hookimpl
def qlinear_kernels():
    return kernels()
