"""The fbgemm provider: quantized GEMMs from fbgemm-gpu-genai's ``torch.ops.fbgemm`` (CUTLASS, sm_90a;
f4f4bf16 sm_100a).

Importing this package (and discovering it) imports torch and qlinear only. ``fbgemm_gpu`` is
imported by a kernel's ``is_supported`` after the platform checks pass, or at first use
(``library.py``). fbgemm-gpu-genai builds are tied to torch versions (1.6.0 <-> torch 2.11,
1.9.0 <-> torch 2.14): a mismatched pair is reported as "fbgemm-gpu-genai not importable: <error>".
"""

from qlinear import hookimpl

from .library import TORCH_PAIRING  # the torch pairing (also in README and pyproject)

__all__ = ["TORCH_PAIRING", "kernels", "qlinear_kernels"]


def kernels() -> list:
    from .fp8 import FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel
    from .fp8_block import FbgemmFp8GroupwiseLinearKernel
    from .int8 import FbgemmInt8LinearKernel
    from .mp import FbgemmW4A16LinearKernel
    from .nvfp4 import FbgemmNvFp4LinearKernel

    return [
        FbgemmFp8RowwiseLinearKernel,
        FbgemmFp8TensorwiseLinearKernel,
        FbgemmFp8GroupwiseLinearKernel,
        FbgemmInt8LinearKernel,
        FbgemmW4A16LinearKernel,
        FbgemmNvFp4LinearKernel,
    ]


@hookimpl
def qlinear_kernels():
    return kernels()
