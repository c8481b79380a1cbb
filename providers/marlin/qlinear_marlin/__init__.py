"""The marlin provider: qlinear's own Marlin-class mixed-precision CUDA kernels.

W4A16 / W8A16 (GPTQ uint4b8 / uint8b128, uint4 / uint8 + zero points; fp16/bf16; per-channel or
grouped scales; act-order), and weight-only W8A16 / W4A16 kernels for FP8 (per-tensor/channel, 128x128
blocks), NVFP4, MXFP4 and MXFP8 weights
as one JIT-compiled extension (built when a layer's weights are processed, cached under
$QLINEAR_CACHE_DIR/marlin, default ~/.cache/qlinear/marlin). Nothing heavy is imported here:
torch.utils.cpp_extension loads only when a CUDA layer is first processed.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .fp import KERNELS as FLOAT_KERNELS
    from .mp import MarlinMPLinearKernel

    return [MarlinMPLinearKernel, *FLOAT_KERNELS]
