"""The torch provider's CUDA kernels against the reference, on a real GPU (skipped without one)."""

import pytest
import torch

from qlinear import testing
from qlinear_torch import compiled
from qlinear_torch.kernels import KERNELS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA_KERNELS = [k for k in KERNELS if "Cuda" in k.__name__]
MS = (1, 33)  # M=1 exercises _int_mm's M padding; 33 the unpadded path and the 1x128 M%4 padding


@pytest.mark.parametrize("kernel,case", testing.case_params(CUDA_KERNELS, ms=MS))
def test_conformance_cuda(kernel, case):
    testing.run_case(kernel, case, device="cuda")


@pytest.mark.parametrize("kernel", CUDA_KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs_cuda(kernel):
    ok, why = kernel.is_supported()
    if not ok:
        pytest.skip(why)
    testing.check_bad_inputs(kernel, device="cuda")


@pytest.mark.parametrize("kernel", [k for k in CUDA_KERNELS if "W8A16" not in k.__name__], ids=lambda k: k.__name__)
def test_supported_on_this_gpu(kernel):
    """On the H100 (sm90, torch 2.11) every CUDA kernel but the W8A16 probe must pass its gate."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("expectations are for an SM90 card")
    assert kernel.is_supported() == (True, None)


def test_cuda_runs_the_eager_chain(monkeypatch):
    """On CUDA the quantization / epilogue chains run eager (a compiled call cost 100-200 us of host
    time per call, and recompiled inside CUDA-graph captures): no torch.compile on the call path."""
    monkeypatch.setenv("QLINEAR_TORCH_COMPILE", "1")
    from qlinear_torch.fp8 import TorchCudaRowWiseFP8ScaledMMLinearKernel
    from qlinear_torch.int8 import TorchCudaInt8ScaledMMLinearKernel

    def no_compile(*a, **k):
        raise AssertionError("torch.compile on a CUDA call path")

    monkeypatch.setattr(torch, "compile", no_compile)
    for k in (TorchCudaRowWiseFP8ScaledMMLinearKernel, TorchCudaInt8ScaledMMLinearKernel):
        case = next(c for c in testing.cases_for(k, ms=(1, 33)) if k.can_implement(c.config)[0])
        testing.run_case(k, case, device="cuda")
