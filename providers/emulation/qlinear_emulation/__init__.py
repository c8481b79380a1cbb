"""The emulation provider: a kernel for every family on any device, built on ``qlinear.formats``.

It dequantizes the weight once (float32), quantizes-dequantizes the activation the way the format
says, and runs a float32 matmul. Slow but exact to the format: the reference every other provider
is tested against, and the kernel of last resort (priority 0).
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .kernels import KERNELS

    return KERNELS
