"""The cutlass provider: Hopper (sm_90a) GEMMs written against CUTLASS 3.x / CuTe C++ headers.

FP8 and INT8 W8A8 scaled GEMMs (per-tensor / per-token activations x per-tensor / per-channel
weights, bias, asymmetric INT8 activations) with the scales in a fused epilogue, block-scaled FP8
(1x128 / 128x128, scales in the mainloop), one-launch activation quantization, and mixed-input
W4A16 (GPTQ / AWQ int4 weights re-laid once, up-converted in registers for wgmma). Two CUDA
extensions (W8A8 and W4A16), each JIT-compiled with nvcc when its first layer loads and cached on
disk (``build.py``). Nothing heavy is imported here.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .fp8 import CutlassFP8ScaledMMLinearKernel
    from .fp8_block import CutlassFp8BlockScaledMMLinearKernel
    from .int8 import CutlassInt8ScaledMMLinearKernel
    from .w4a16 import CutlassW4A16LinearKernel

    return [CutlassFP8ScaledMMLinearKernel, CutlassInt8ScaledMMLinearKernel, CutlassFp8BlockScaledMMLinearKernel,
            CutlassW4A16LinearKernel]
