"""Each flashinfer kernel's plumbing (padding, swizzles, shuffles, scale handling, output slicing,
the large-M delegate) through the conformance kit on CPU, against a stand-in flashinfer module
(conftest.make) that computes what each function is documented to compute. The real calls are
checked on the H100 (test_flashinfer_gpu.py) for the sm_90 kernels and are unverified for SM100/120."""

import pytest
import torch

import qlinear
from qlinear import quant_key as qk, testing
from qlinear.config import FP8ScaledMMLinearLayerConfig

from qlinear_flashinfer import activation as A, layouts as L, library
from qlinear_flashinfer.fp8 import FlashInferFp8ScaledMMLinearKernel
from qlinear_flashinfer.fp8_block import FlashInferFp8BlockScaledDynamicLinearKernel
from qlinear_flashinfer.mx import FlashInferCutlassMxfp8LinearKernel, FlashInferMxFp4LinearKernel
from qlinear_flashinfer.nvfp4 import (FlashInferB12xNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
                                      FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel)

KERNELS = [FlashInferFp8ScaledMMLinearKernel, FlashInferFp8BlockScaledDynamicLinearKernel,
           FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
           FlashInferB12xNvFp4LinearKernel, FlashInferMxFp4LinearKernel, FlashInferCutlassMxfp8LinearKernel]
FP8_B = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))


@pytest.fixture
def fake(monkeypatch, make_fake_flashinfer):
    calls = []
    mod = make_fake_flashinfer(calls)
    monkeypatch.setattr(library, "_import", lambda name, *a, **k: mod)
    for k in KERNELS:
        monkeypatch.setattr(k, "is_supported", classmethod(lambda cls, platform=None: (True, None)))
    return calls


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_plumbing_through_the_conformance_kit(kernel, fake):
    extra = []
    if kernel.family == "nvfp4":  # an N and K that need padding on every path
        extra = [qlinear.NvFp4LinearLayerConfig((200, 80), torch.bfloat16)]
    cases = testing.cases_for(kernel, ms=(1, 5)) + [testing.Case(c, 3) for c in extra]
    results = testing.check_kernel(kernel, cases=cases)
    assert sum(r.ran for r in results) >= 2
    assert fake, "the flashinfer function was never called"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs(kernel, fake):
    testing.check_bad_inputs(kernel)


def test_nothing_is_called_before_the_first_apply(fake):
    """Selection and weight loading look functions up but never call them: FlashInfer's JIT build
    (tens of seconds) happens on the first apply only."""
    for kernel in KERNELS:
        case = next(c for c in testing.cases_for(kernel, ms=(2,)) if kernel.can_implement(c.config)[0])
        params, x, bias = testing.make_case_layer(case, "cpu")
        layer = qlinear.make_layer(case.config, params)
        k = kernel.create(case.config)
        k.process_weights_after_loading(layer)
        assert fake == [], f"{kernel.__name__} called {fake} before apply"
        k.apply(layer, x, bias)
        assert fake, kernel.__name__
        fake.clear()


def test_large_m_goes_to_another_kernel_chosen_by_the_core(fake):
    K = FlashInferFp8BlockScaledDynamicLinearKernel
    params, x, bias = testing.make_case_layer(testing.Case(FP8_B, 40), "cpu")
    layer = qlinear.make_layer(FP8_B, params)
    k = K.create(FP8_B)
    k.process_weights_after_loading(layer)
    assert k.delegate is not None and not isinstance(k.delegate, K)
    assert layer.flashinfer_large_m_kernel == k.delegate.full_name()
    # the delegate is what the core would choose with this kernel left out
    others = [c for c in qlinear.get_registry().kernels("fp8_block") if c is not K]
    assert type(k.delegate) is qlinear.select(FP8_B, kernels=others).kernel
    k.apply(layer, x, bias)  # M = 40 >= 32
    assert fake == []
    k.apply(layer, x[:31], bias)  # M = 31 < 32
    assert fake == [("fp8_blockscale_gemm_sm90", 31)]


def test_no_other_block_kernel_means_flashinfer_for_every_m(fake, monkeypatch):
    K = FlashInferFp8BlockScaledDynamicLinearKernel
    reg = qlinear.get_registry()
    monkeypatch.setattr(reg, "kernels", lambda family=None, platform_kind=None: [K])
    params, x, bias = testing.make_case_layer(testing.Case(FP8_B, 40), "cpu")
    layer = qlinear.make_layer(FP8_B, params)
    k = K.create(FP8_B)
    k.process_weights_after_loading(layer)
    assert k.delegate is None and layer.flashinfer_large_m_kernel is None
    k.apply(layer, x, bias)
    assert fake == [("fp8_blockscale_gemm_sm90", 40)]


def test_trtllm_weights_are_shuffled(fake):
    from qlinear_flashinfer.layouts import unshuffle_matrix_a

    c = qlinear.NvFp4LinearLayerConfig((256, 512))
    params, _, _ = testing.make_case_layer(testing.Case(c, 2), "cpu")
    w0 = params["weight"].clone()
    layer = qlinear.make_layer(c, params)
    FlashInferTrtllmNvFp4LinearKernel.create(c).process_weights_after_loading(layer)
    assert not torch.equal(layer.weight, w0) and torch.equal(unshuffle_matrix_a(layer.weight.data), w0)


# ---- the checks above have teeth: a wrong layout fails the kit ---------------------------------
def test_unswizzled_activation_scales_fail(fake, monkeypatch):
    from qlinear.formats.micro import quantize_nvfp4
    def bad(x2, gs, kp):
        q, s, _ = quantize_nvfp4(L.pad_cols(x2, kp), gs.float())
        return q, L.pad_rows(s, L.round_up(s.shape[0], 128))  # linear, not swizzled
    monkeypatch.setattr(A, "nvfp4", bad)
    with pytest.raises(AssertionError):
        testing.check_kernel(FlashInferCutlassNvFp4LinearKernel, cases=testing.cases_for(FlashInferCutlassNvFp4LinearKernel, ms=(5,)))

def test_trtllm_without_shuffle_fails(fake, monkeypatch):
    import qlinear_flashinfer.nvfp4 as m
    monkeypatch.setattr(m, "shuffle_matrix_a", lambda t, e=128: t)
    with pytest.raises(AssertionError):
        testing.check_kernel(FlashInferTrtllmNvFp4LinearKernel, cases=testing.cases_for(FlashInferTrtllmNvFp4LinearKernel, ms=(5,)))

def test_mxfp8_unswizzled_weight_scale_fails(fake, monkeypatch):
    import qlinear_flashinfer.mx as m
    monkeypatch.setattr(m, "swizzle_mx_scale_flat", lambda s: L.pad_rows(s, L.round_up(s.shape[0],128)).reshape(-1))
    with pytest.raises(AssertionError):
        testing.check_kernel(FlashInferCutlassMxfp8LinearKernel, cases=testing.cases_for(FlashInferCutlassMxfp8LinearKernel, ms=(5,)))
