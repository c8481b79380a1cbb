"""flashinfer provider on CPU CI: discovery, gating (simulated sm_90 / sm_100 / sm_120 / no library),
no import of flashinfer unless a kernel needs it, and no JIT-triggering call before the first apply."""


import pytest
import torch

import qlinear
from qlinear import quant_key as qk
from qlinear.config import FP8ScaledMMLinearLayerConfig, MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig
from qlinear import testing
from qlinear.testing import default_configs

from qlinear_flashinfer import library
from qlinear_flashinfer.fp8 import FlashInferFp8ScaledMMLinearKernel
from qlinear_flashinfer.fp8_block import FlashInferFp8BlockScaledDynamicLinearKernel
from qlinear_flashinfer.mx import FlashInferCutlassMxfp8LinearKernel, FlashInferMxFp4LinearKernel
from qlinear_flashinfer.nvfp4 import (FlashInferB12xNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
                                      FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel)

NVFP4 = [FlashInferCutlassNvFp4LinearKernel, FlashInferTrtllmNvFp4LinearKernel, FlashInferCudnnNvFp4LinearKernel,
         FlashInferB12xNvFp4LinearKernel]
ALL = [FlashInferFp8ScaledMMLinearKernel, FlashInferFp8BlockScaledDynamicLinearKernel, *NVFP4,
       FlashInferMxFp4LinearKernel, FlashInferCutlassMxfp8LinearKernel]
FP8_T = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8DynamicTensorSym, (256, 512))
FP8_B = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))


@pytest.fixture
def lib(monkeypatch, make_fake_flashinfer):
    """Control what importing flashinfer / cudnn / cutlass gives; record every attempt."""
    state = {"flashinfer": None, "extra": set(), "calls": [], "fn_calls": []}

    def fake_import(name, *a, **k):
        state["calls"].append(name)
        if name == "flashinfer" and state["flashinfer"] is not None:
            return state["flashinfer"]
        if name in state["extra"]:
            return object()
        raise ModuleNotFoundError(f"No module named '{name}'")

    monkeypatch.setattr(library, "_import", fake_import)
    state["present"] = lambda backends=None: state.__setitem__("flashinfer", make_fake_flashinfer(state["fn_calls"], backends))
    return state


def sm(p):
    return qlinear.make_platform(p)


def test_discovered():
    info = qlinear.get_registry().providers["flashinfer"]
    assert info.ok, info.error
    assert [k.__name__ for k in info.kernels] == [k.__name__ for k in ALL]
    assert all(k.provider == "flashinfer" and "JIT-compiles on first use" in k.notes for k in ALL)


def test_import_and_selection_never_import_flashinfer():
    """Importing the provider and gating every kernel on every platform loads none of flashinfer."""
    assert testing.library_imports_during_selection("qlinear_flashinfer", "flashinfer") == ([], [])


@pytest.mark.parametrize("preset", ["cpu", "zen5", "mi300", "xpu"])
def test_non_cuda_never_imports(preset, lib):
    for k in ALL:
        ok, why = k.is_supported(sm(preset))
        assert not ok and "needs an NVIDIA GPU" in why
    assert lib["calls"] == []


def test_sm90_no_library(lib):
    for k in (FlashInferFp8ScaledMMLinearKernel, FlashInferFp8BlockScaledDynamicLinearKernel):
        ok, why = k.is_supported(sm("sm90"))
        assert not ok and why.startswith("flashinfer not importable: ModuleNotFoundError")
    for k in NVFP4 + [FlashInferMxFp4LinearKernel, FlashInferCutlassMxfp8LinearKernel]:
        ok, why = k.is_supported(sm("sm90"))  # capability says no before any import
        assert not ok and ("have 90" in why or "have sm_90" in why), why
    assert lib["calls"] == ["flashinfer"]


def test_sm90_with_library(lib):
    lib["present"]()
    assert FlashInferFp8ScaledMMLinearKernel.is_supported(sm("sm90")) == (True, None)
    assert FlashInferFp8BlockScaledDynamicLinearKernel.is_supported(sm("sm90")) == (True, None)
    assert FlashInferFp8ScaledMMLinearKernel.is_supported(sm("sm80"))[1] == "flashinfer bmm_fp8(backend='cublas') needs CUDA cc>=89, have 80"
    for k in NVFP4 + [FlashInferMxFp4LinearKernel, FlashInferCutlassMxfp8LinearKernel]:
        assert not k.is_supported(sm("sm90"))[0]
    ok, why = FlashInferFp8BlockScaledDynamicLinearKernel.is_supported(sm("sm100"))
    assert not ok and "sm_90" in why


def test_sm100_gates(lib):
    lib["present"]()
    p = sm("sm100")
    assert FlashInferCutlassNvFp4LinearKernel.is_supported(p) == (True, None)
    assert FlashInferTrtllmNvFp4LinearKernel.is_supported(p) == (True, None)
    assert FlashInferCutlassMxfp8LinearKernel.is_supported(p) == (True, None)
    ok, why = FlashInferCudnnNvFp4LinearKernel.is_supported(p)
    assert not ok and "'cudnn'" in why  # the cuDNN frontend module is missing
    ok, why = FlashInferB12xNvFp4LinearKernel.is_supported(p)
    assert not ok and "sm_120 or sm_121" in why
    ok, why = FlashInferMxFp4LinearKernel.is_supported(p)
    assert not ok and "'cutlass'" in why  # CuTe-DSL runtime missing
    lib["extra"].update({"cudnn", "cutlass"})
    assert FlashInferCudnnNvFp4LinearKernel.is_supported(p) == (True, None)
    assert FlashInferMxFp4LinearKernel.is_supported(p) == (True, None)


def test_sm120_gates(lib):
    lib["present"]()
    lib["extra"].update({"cudnn", "cutlass"})
    p = sm("sm120")
    assert FlashInferB12xNvFp4LinearKernel.is_supported(p) == (True, None)
    assert FlashInferCutlassNvFp4LinearKernel.is_supported(p) == (True, None)
    ok, why = FlashInferTrtllmNvFp4LinearKernel.is_supported(p)
    assert not ok and "sm_100 or sm_103 or sm_107" in why
    ok, why = FlashInferMxFp4LinearKernel.is_supported(p)
    assert not ok and "sm_120" in why
    with qlinear.simulate_platform("sm120"):
        assert qlinear.select(NvFp4LinearLayerConfig((256, 512)), kernels=ALL).kernel is FlashInferB12xNvFp4LinearKernel


def test_library_backend_table_is_consulted(lib):
    """An installed flashinfer whose mm_fp4 has no b12x backend (older 0.x) is a reason, not a crash."""
    lib["present"]({"cutlass": {100, 103, 120}, "cudnn": {100}, "trtllm": {100}})
    lib["extra"].add("cutlass")
    ok, why = FlashInferB12xNvFp4LinearKernel.is_supported(sm("sm120"))
    assert not ok and "has no backend 'b12x'" in why
    ok, why = FlashInferCudnnNvFp4LinearKernel.is_supported(sm("sm120"))
    assert not ok and "does not support sm_120" in why


def test_missing_function_is_named(lib, monkeypatch):
    lib["present"]()
    delattr(lib["flashinfer"], "fp8_blockscale_gemm_sm90")
    ok, why = FlashInferFp8BlockScaledDynamicLinearKernel.is_supported(sm("sm90"))
    assert not ok and "has no fp8_blockscale_gemm_sm90" in why


def test_cache_reset(lib):
    assert not FlashInferFp8ScaledMMLinearKernel.is_supported(sm("sm90"))[0]
    lib["present"]()
    assert not FlashInferFp8ScaledMMLinearKernel.is_supported(sm("sm90"))[0]  # cached
    library.reset_caches()
    assert FlashInferFp8ScaledMMLinearKernel.is_supported(sm("sm90"))[0]


def test_selection_falls_back_when_missing(lib):
    with qlinear.simulate_platform("sm90"):
        for c in (FP8_T, FP8_B):
            sel = qlinear.select(c, evaluate_all=True)
            assert sel.kernel.provider != "flashinfer"
            assert any(n.startswith("flashinfer.") and "not importable" in r for n, r in sel.reasons.items())
    with qlinear.simulate_platform("sm100"):
        for c in (NvFp4LinearLayerConfig((256, 512)), MxFp4LinearLayerConfig((256, 512)), Mxfp8LinearLayerConfig((256, 512))):
            sel = qlinear.select(c, evaluate_all=True)
            assert sel.kernel.provider != "flashinfer"


@pytest.mark.parametrize("k", ALL, ids=lambda k: k.__name__)
def test_can_implement_answers_every_default_config(k):
    yes = 0
    for c in default_configs(k.family):
        ok, why = k.can_implement(c)
        assert ok or (isinstance(why, str) and why)
        yes += ok
    assert yes > 0


def test_can_implement_details():
    ok, why = FlashInferFp8ScaledMMLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512)))
    assert not ok and "per-tensor" in why
    ok, why = FlashInferFp8BlockScaledDynamicLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512), torch.float16))
    assert not ok and "bfloat16" in why
    ok, why = FlashInferFp8BlockScaledDynamicLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (300, 512)))
    assert not ok and "64" in why
    ok, why = FlashInferCutlassMxfp8LinearKernel.can_implement(Mxfp8LinearLayerConfig((64, 512)))
    assert not ok and "128" in why
