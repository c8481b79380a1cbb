"""The torch provider: PyTorch-native quantized GEMMs on CPU and CUDA.

``torch._int_mm`` (INT8 W8A8), ``torch._scaled_mm`` / ``F.scaled_mm`` (FP8 per-tensor, row-wise,
block), ``aten._weight_int4pack_mm[_for_cpu]`` (tinygemm W4A16) and ``aten._weight_int8pack_mm``
(W8A16). Depends on torch only; every kernel is gated on the ops this torch build has and on the
device (kind, compute capability), with the reason in ``doctor``.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .kernels import KERNELS

    return KERNELS
