"""The zentorch provider: AMD zentorch CPU kernels for AMD EPYC (Zen) CPUs.

- ``ZentorchInt8ScaledMMLinearKernel`` (INT8 W8A8, dynamic symmetric per-token activations,
  per-channel or per-tensor weights) over ``zentorch_dynamic_qlinear`` with prepacked weights.
- ``ZentorchWNA16LinearKernel`` (MP W4A16: uint4b8, or uint4 + zero points; per-channel or grouped;
  act-order by a channel sort at load; bfloat16) over ``zentorch_woq_repack_weight`` +
  ``zentorch_woq_linear``.

Both gate on a Zen CPU (or ``QLINEAR_ZENTORCH_ANY_CPU=1`` on other x86) and on zentorch importing
with its ops registered. zentorch itself is imported by the gate, never by importing this package.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .int8 import ZentorchInt8ScaledMMLinearKernel
    from .mp import ZentorchWNA16LinearKernel

    return [ZentorchInt8ScaledMMLinearKernel, ZentorchWNA16LinearKernel]
