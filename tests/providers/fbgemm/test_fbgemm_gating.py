"""fbgemm provider on CPU CI: discovery, gating under simulated platforms with the library faked
missing / present / mismatched, and that nothing imports fbgemm_gpu unless a kernel needs it."""

import types

import pytest
import torch

import qlinear
from qlinear import quant_key as qk
from qlinear.config import (FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig,
                            NvFp4LinearLayerConfig)
from qlinear.scalar_type import scalar_types as st
from qlinear import testing
from qlinear.testing import default_configs


from qlinear_fbgemm import library
from qlinear_fbgemm.fp8 import FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel
from qlinear_fbgemm.fp8_block import FbgemmFp8GroupwiseLinearKernel
from qlinear_fbgemm.int8 import FbgemmInt8LinearKernel
from qlinear_fbgemm.mp import FbgemmW4A16LinearKernel
from qlinear_fbgemm.nvfp4 import FbgemmNvFp4LinearKernel

SM90_KERNELS = [FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel, FbgemmFp8GroupwiseLinearKernel,
                FbgemmW4A16LinearKernel]
ALL = SM90_KERNELS + [FbgemmInt8LinearKernel, FbgemmNvFp4LinearKernel]

FP8_CH_TOKEN = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
FP8_BLOCK = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))
INT8 = Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512))
W4 = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)
NVFP4 = NvFp4LinearLayerConfig((256, 512))


@pytest.fixture(autouse=True)
def _fresh_caches():
    library.reset_caches()
    yield
    library.reset_caches()


@pytest.fixture
def imports(monkeypatch):
    """Record (and control) every import the provider attempts."""
    calls, mode = [], {"v": "missing"}

    def fake_import(name, *a, **k):
        calls.append(name)
        if mode["v"] == "missing":
            raise ModuleNotFoundError(f"No module named '{name.split('.')[0]}'")
        if mode["v"] == "mismatch":
            raise OSError("fbgemm_gpu_experimental_gen_ai.so: undefined symbol: _ZN3c104impl3cow11cow_deleterEPv")
        return types.ModuleType(name)

    monkeypatch.setattr(library, "_import", fake_import)
    return calls, mode


@pytest.fixture
def ops_present(monkeypatch):
    monkeypatch.setattr(library, "op_available", lambda name: True)


def test_discovered_with_all_kernels():
    info = qlinear.get_registry().providers["fbgemm"]
    assert info.ok, info.error
    assert {k.__name__ for k in info.kernels} == {k.__name__ for k in ALL}
    assert all(k.provider == "fbgemm" and k.backend == "fbgemm" for k in info.kernels)
    assert {k.family for k in info.kernels} == {"fp8", "fp8_block", "int8", "mp", "nvfp4"}
    assert library.TORCH_PAIRING == {"1.6.0": "2.11", "1.9.0": "2.14"}


def test_import_and_selection_never_import_fbgemm_gpu():
    """Importing the provider and gating every kernel on every platform loads none of fbgemm_gpu."""
    assert testing.library_imports_during_selection("qlinear_fbgemm", "fbgemm_gpu") == ([], [])


@pytest.mark.parametrize("preset", ["cpu", "zen5", "mi300", "xpu"])
def test_non_cuda_platforms_say_why_without_importing(preset, imports):
    calls, _ = imports
    for k in ALL:
        ok, why = k.is_supported(qlinear.make_platform(preset))
        assert not ok and "needs an NVIDIA GPU" in why
    assert calls == []


def test_capability_gates_come_before_the_import(imports):
    calls, _ = imports
    sm80 = qlinear.make_platform("sm80")
    for k in SM90_KERNELS:
        ok, why = k.is_supported(sm80)
        assert not ok and "sm_90" in why and "sm_80" in why, why
    ok, why = FbgemmNvFp4LinearKernel.is_supported(sm80)
    assert not ok and "sm_100" in why
    assert calls == []
    # INT8's op is a CUTLASS 2.x sm_80 kernel: it gets as far as the library
    ok, why = FbgemmInt8LinearKernel.is_supported(sm80)
    assert not ok and why.startswith("fbgemm-gpu-genai not importable:")
    assert calls == [library.MODULE]


def test_sm90_library_missing(imports):
    calls, _ = imports
    for k in SM90_KERNELS + [FbgemmInt8LinearKernel]:
        ok, why = k.is_supported(qlinear.make_platform("sm90"))
        assert not ok and why.startswith("fbgemm-gpu-genai not importable: ModuleNotFoundError"), why
        assert "1.6.0 <-> torch 2.11" in why
    assert calls == [library.MODULE]  # tried once, then cached


def test_mismatched_torch_pair_is_a_reason_not_a_crash(imports):
    _, mode = imports
    mode["v"] = "mismatch"
    ok, why = FbgemmFp8RowwiseLinearKernel.is_supported(qlinear.make_platform("sm90"))
    assert not ok and why.startswith("fbgemm-gpu-genai not importable: OSError") and "undefined symbol" in why
    with qlinear.simulate_platform("sm90"):
        sel = qlinear.select(FP8_CH_TOKEN, evaluate_all=True)  # falls back, never raises
    assert sel.kernel.provider != "fbgemm"
    assert "not importable" in sel.reasons["fbgemm.FbgemmFp8RowwiseLinearKernel"]


def test_cache_is_resettable(imports):
    calls, mode = imports
    sm90 = qlinear.make_platform("sm90")
    assert not FbgemmFp8RowwiseLinearKernel.is_supported(sm90)[0]
    mode["v"] = "present"
    assert not FbgemmFp8RowwiseLinearKernel.is_supported(sm90)[0]  # cached "missing"
    library.reset_caches()
    assert library.library_status() == (True, None)
    assert len(calls) == 2


def test_sm90_library_present_selects_fbgemm(imports, ops_present):
    _, mode = imports
    mode["v"] = "present"
    with qlinear.simulate_platform("sm90"):
        assert FbgemmFp8RowwiseLinearKernel in qlinear.select(FP8_CH_TOKEN, evaluate_all=True).viable
        assert qlinear.select(FP8_CH_TOKEN, kernels=ALL).kernel is FbgemmFp8RowwiseLinearKernel
        assert FbgemmFp8GroupwiseLinearKernel in qlinear.select(FP8_BLOCK, evaluate_all=True).viable
        assert FbgemmW4A16LinearKernel in qlinear.select(W4, evaluate_all=True).viable
        assert FbgemmInt8LinearKernel in qlinear.select(INT8, evaluate_all=True).viable
        # an SM100-only kernel stays out on sm90
        sel = qlinear.select(NVFP4, evaluate_all=True)
        assert "sm_100" in sel.reasons["fbgemm.FbgemmNvFp4LinearKernel"]
    with qlinear.simulate_platform("sm100"):
        assert FbgemmNvFp4LinearKernel in qlinear.select(NVFP4, evaluate_all=True).viable
        assert FbgemmFp8RowwiseLinearKernel not in qlinear.select(FP8_CH_TOKEN, evaluate_all=True).viable


def test_missing_op_is_named(imports, monkeypatch):
    _, mode = imports
    mode["v"] = "present"
    monkeypatch.setattr(library, "op_available", lambda name: name != "f8f8bf16_groupwise")
    ok, why = FbgemmFp8GroupwiseLinearKernel.is_supported(qlinear.make_platform("sm90"))
    assert not ok and "torch.ops.fbgemm.f8f8bf16_groupwise" in why
    assert FbgemmFp8RowwiseLinearKernel.is_supported(qlinear.make_platform("sm90")) == (True, None)


def test_selection_with_library_missing_falls_back_with_reasons(imports):
    with qlinear.simulate_platform("sm90"):
        for c in (FP8_CH_TOKEN, FP8_BLOCK, INT8, W4):
            sel = qlinear.select(c, evaluate_all=True)
            assert sel.kernel is not None and sel.kernel.provider != "fbgemm"
            fb = [r for n, r in sel.reasons.items() if n.startswith("fbgemm.")]
            assert fb and all("not importable" in r for r in fb)


# ---- can_implement: every default config gets a verdict with a reason ---------------------------
@pytest.mark.parametrize("k", ALL, ids=lambda k: k.__name__)
def test_can_implement_answers_every_default_config(k):
    fam = k.family
    yes = 0
    for c in default_configs(fam):
        ok, why = k.can_implement(c)
        assert ok or (isinstance(why, str) and why), (k.__name__, c)
        yes += ok
    assert yes > 0, f"{k.__name__} accepts none of the default {fam} configs"


def test_can_implement_details():
    assert not FbgemmFp8RowwiseLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (255, 513)))[0]
    ok, why = FbgemmFp8TensorwiseLinearKernel.can_implement(FP8_CH_TOKEN)
    assert not ok and "per-tensor" in why
    ok, why = FbgemmFp8GroupwiseLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (300, 520)))
    assert not ok and "128" in why
    ok, why = FbgemmW4A16LinearKernel.can_implement(
        MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.float16, 128, False, False))
    assert not ok and "bfloat16" in why
    ok, why = FbgemmW4A16LinearKernel.can_implement(
        MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 64, False, False))
    assert not ok and "128" in why
    assert FbgemmW4A16LinearKernel.can_implement(
        MPLinearLayerConfig((512, 256), (512, 256), st.uint4, torch.bfloat16, -1, True, False))[0]
    ok, why = FbgemmInt8LinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(False, True, False, (256, 512)))
    assert not ok and "asymmetric" in why
