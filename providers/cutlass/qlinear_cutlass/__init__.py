"""The cutlass provider: Hopper (sm_90a) GEMMs written against CUTLASS 3.x / CuTe C++ headers.

FP8 and INT8 W8A8 scaled GEMMs (per-tensor / per-token activations x per-tensor / per-channel
weights, bias, asymmetric INT8 activations) with the scales in a fused epilogue, block-scaled FP8
(1x128 / 128x128, scales in the mainloop), one-launch activation quantization, mixed-input
W4A16 / W8A16 (GPTQ / AWQ int4 and GPTQ int8 weights re-laid once, up-converted in registers for
wgmma), NVFP4 / MXFP4 / MXFP8 weight-only on the same GEMM (E2M1 / E4M3 codes, a scale per 16 / 32 k) and W4A8 (int4
weights looked up as FP8 values for FP8 wgmma); and, for Blackwell (sm_100a,
UNVERIFIED: no SM100 GPU here), NVFP4 W4A4 on the SM100 block-scaled tensor cores. Seven CUDA
extensions (W8A8, W4A16, W8A16, FP4 and MXFP8 weight-only, W4A8, NVFP4), each JIT-compiled with nvcc when its first layer loads and cached on
disk (``build.py``). Nothing heavy is imported here.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .fp8 import CutlassFP8ScaledMMLinearKernel
    from .float_weights import KERNELS as FLOAT_WEIGHTS
    from .fp8_block import CutlassFp8BlockScaledMMLinearKernel
    from .int8 import CutlassInt8ScaledMMLinearKernel
    from .nvfp4 import CutlassNvFp4LinearKernel
    from .w4a16 import CutlassW4A16LinearKernel, CutlassW8A16LinearKernel
    from .w4a8 import CutlassW4A8LinearKernel

    return [CutlassFP8ScaledMMLinearKernel, CutlassInt8ScaledMMLinearKernel, CutlassFp8BlockScaledMMLinearKernel,
            CutlassW4A16LinearKernel, CutlassW8A16LinearKernel, CutlassW4A8LinearKernel, CutlassNvFp4LinearKernel,
            *FLOAT_WEIGHTS]
