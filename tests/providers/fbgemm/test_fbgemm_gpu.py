"""fbgemm kernels on a real GPU, judged by the conformance kit (runs on the H100: sm_90).

Every kernel that can run on sm_90 is run through every default case of its family; cases a kernel
declines skip with its reason, and ``check_kernel`` fails if a kernel ran nothing at all."""

import pytest
import torch

import qlinear
from qlinear import testing

from qlinear_fbgemm import library
from qlinear_fbgemm.fp8 import FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel
from qlinear_fbgemm.fp8_block import FbgemmFp8GroupwiseLinearKernel
from qlinear_fbgemm.int8 import FbgemmInt8LinearKernel
from qlinear_fbgemm.mp import FbgemmW4A16LinearKernel
from qlinear_fbgemm.nvfp4 import FbgemmNvFp4LinearKernel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SM90 = [FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel, FbgemmFp8GroupwiseLinearKernel,
        FbgemmInt8LinearKernel, FbgemmW4A16LinearKernel]
test_conformance, test_kit, test_bad_inputs = testing.conformance_suite(SM90, device="cuda")


def test_library_imports_here():
    ok, why = library.library_status()
    assert ok, why
    for k in SM90:
        assert k.is_supported() == (True, None), k.__name__


def test_leading_dims_and_fp16_output():
    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig

    c = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512), torch.float16)
    params, x, bias = testing.make_case_layer(testing.Case(c, 6), "cuda")
    layer = qlinear.make_layer(c, params)
    k = FbgemmFp8RowwiseLinearKernel.create(c)
    k.process_weights_after_loading(layer)
    out = k.apply(layer, x.reshape(2, 3, 512), bias)
    assert out.shape == (2, 3, 256) and out.dtype == torch.float16
    assert torch.allclose(out.reshape(6, 256), k.apply(layer, x, bias))


def test_sm100_kernel_is_gated_on_this_card():
    cc = torch.cuda.get_device_capability()
    if cc[0] * 10 + cc[1] in (100, 103):
        pytest.skip("an SM100 card: the NVFP4 kernel would run here")
    ok, why = FbgemmNvFp4LinearKernel.is_supported()
    assert not ok and "sm_100" in why
