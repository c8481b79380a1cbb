"""The triton provider: Triton GEMMs for W4A16 (MP), NVFP4 / MXFP4 weight-only, INT8 and FP8 scaled mm, block-scaled FP8, and
fused activation-quantization kernels (``qlinear_triton.quant``) that other providers may reuse.

Importing this package imports neither triton nor any ``@triton.jit`` code: the kernel classes
check for triton in ``is_supported`` and load their Triton modules on first use.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .fp8 import TritonFP8ScaledMMLinearKernel
    from .fp4 import TritonMxFp4WeightOnlyKernel, TritonNvFp4WeightOnlyKernel
    from .fp8_block import TritonFp8BlockScaledMMLinearKernel
    from .int8 import TritonInt8ScaledMMLinearKernel
    from .mp import TritonW4A16LinearKernel

    return [TritonW4A16LinearKernel, TritonInt8ScaledMMLinearKernel, TritonFP8ScaledMMLinearKernel,
            TritonFp8BlockScaledMMLinearKernel, TritonNvFp4WeightOnlyKernel, TritonMxFp4WeightOnlyKernel]
