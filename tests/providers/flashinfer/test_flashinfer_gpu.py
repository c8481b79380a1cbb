"""flashinfer kernels on a real GPU (the H100, sm_90), judged by the conformance kit.

On sm_90 two kernels can run: bmm_fp8 (per-tensor FP8) and the block-FP8 dynamic kernel
(fp8_blockscale_gemm_sm90 for M < 32, the core-chosen delegate above). The first call of each
JIT-compiles (~34 s / ~100 s); the SM100/SM120 kernels must be gated off here with a reason."""

import pytest
import torch

import qlinear
from qlinear import quant_key as qk, testing
from qlinear.config import FP8ScaledMMLinearLayerConfig

from qlinear_flashinfer import library
from qlinear_flashinfer.fp8 import FlashInferFp8ScaledMMLinearKernel
from qlinear_flashinfer.fp8_block import FlashInferFp8BlockScaledDynamicLinearKernel
from qlinear_flashinfer.mx import FlashInferCutlassMxfp8LinearKernel, FlashInferMxFp4LinearKernel
from qlinear_flashinfer.nvfp4 import (FlashInferB12xNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
                                      FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SM90 = [FlashInferFp8ScaledMMLinearKernel, FlashInferFp8BlockScaledDynamicLinearKernel]
BLACKWELL = [FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
             FlashInferB12xNvFp4LinearKernel, FlashInferMxFp4LinearKernel, FlashInferCutlassMxfp8LinearKernel]
FP8_B = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))


def _cc():
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


test_conformance, test_kit, test_bad_inputs = testing.conformance_suite(SM90, device="cuda")


def test_library_imports_here():
    mod, why = library.library()
    assert mod is not None, why
    if _cc() == 90:
        for k in SM90:
            assert k.is_supported() == (True, None), k.__name__


@pytest.mark.parametrize("m", [1, 31, 64, 200])
def test_block_kernel_flashinfer_path_at_every_m(m, monkeypatch):
    """fp8_blockscale_gemm_sm90 itself (swapAB below 32, normal above), with the delegate switched off."""
    K = FlashInferFp8BlockScaledDynamicLinearKernel
    if not K.is_supported()[0]:
        pytest.skip(K.is_supported()[1])
    monkeypatch.setattr(K, "choose_delegate", lambda self: None)
    for nk in ((256, 512), (384, 1024)):
        c = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, nk)
        testing.run_case(K, testing.Case(c, m), device="cuda")


def test_block_kernel_delegates_large_m():
    K = FlashInferFp8BlockScaledDynamicLinearKernel
    if not K.is_supported()[0]:
        pytest.skip(K.is_supported()[1])
    params, x, bias = testing.make_case_layer(testing.Case(FP8_B, 64), "cuda")
    layer = qlinear.make_layer(FP8_B, params)
    k = K.create(FP8_B)
    k.process_weights_after_loading(layer)
    print(f"large-M delegate: {layer.flashinfer_large_m_kernel}")
    assert k.delegate is not None and not isinstance(k.delegate, K)
    out = k.apply(layer, x, bias)
    assert out.shape == (64, 256) and torch.isfinite(out.float()).all()


def test_blackwell_kernels_are_gated_on_this_card():
    if _cc() >= 100:
        pytest.skip("a Blackwell card: these kernels could run here")
    for k in BLACKWELL:
        ok, why = k.is_supported()
        assert not ok and why, k.__name__
