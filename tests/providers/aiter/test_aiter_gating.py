"""aiter provider on CPU CI: discovery, gating under simulated platforms (MI300 gfx942, MI355 gfx950,
and platforms where it must NOT appear), with aiter faked missing / present, and that nothing
imports aiter unless a kernel needs it."""

import dataclasses

import pytest
import torch

import qlinear
from qlinear import quant_key as qk
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MxFp4LinearLayerConfig
from qlinear import testing
from qlinear.testing import default_configs

from qlinear_aiter import library
from qlinear_aiter.fp8 import AiterFp8CKLinearKernel, AiterFp8HipblasltLinearKernel, AiterFp8PreshuffledLinearKernel
from qlinear_aiter.fp8_block import AiterFp8BlockScaledLinearKernel
from qlinear_aiter.int8 import AiterInt8ScaledMMLinearKernel
from qlinear_aiter.mxfp4 import AiterMxFp4LinearKernel

ALL = [AiterInt8ScaledMMLinearKernel, AiterFp8CKLinearKernel, AiterFp8PreshuffledLinearKernel,
       AiterFp8HipblasltLinearKernel, AiterFp8BlockScaledLinearKernel, AiterMxFp4LinearKernel]
BOTH_ARCHS = ALL[:-1]  # MXFP4 needs gfx950
FP8_TOKEN = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
FP8_TENSOR = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (256, 512))
FP8_BLOCK = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))
INT8 = Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512))
MXFP4 = MxFp4LinearLayerConfig((256, 512))


def test_presets_carry_the_gfx_arch():
    assert qlinear.make_platform("mi300").gfx_arch == "gfx942"
    assert qlinear.make_platform("mi355").gfx_arch == "gfx950"
    assert qlinear.make_platform("sm90").gfx_arch == "" and qlinear.make_platform("cpu").gfx_arch == ""


def test_discovered_with_all_kernels():
    info = qlinear.get_registry().providers["aiter"]
    assert info.ok, info.error
    assert {k.__name__ for k in info.kernels} == {k.__name__ for k in ALL}
    assert all(k.provider == "aiter" and k.backend == "aiter" for k in info.kernels)
    assert {k.family for k in info.kernels} == {"int8", "fp8", "fp8_block", "mxfp4"}
    assert all("unverified on hardware" in k.notes for k in ALL)


def test_import_and_selection_never_import_aiter():
    """Importing the provider and gating every kernel off ROCm loads none of aiter."""
    assert testing.library_imports_during_selection("qlinear_aiter", "aiter", ("cpu", "sm90", "xpu", "zen5")) == ([], [])


@pytest.mark.parametrize("preset", ["cpu", "zen5", "sm80", "sm90", "sm100", "xpu"])
def test_not_offered_off_rocm_and_no_import(preset, imports):
    for k in ALL:
        ok, why = k.is_supported(qlinear.make_platform(preset))
        assert not ok and "needs an AMD Instinct GPU (ROCm)" in why, why
    with qlinear.simulate_platform(preset):
        for c in (FP8_TOKEN, FP8_BLOCK, INT8, MXFP4):
            sel = qlinear.select(c, evaluate_all=True, raise_on_failure=False)
            assert not any(k.provider == "aiter" for k in sel.viable)
    assert imports["calls"] == []


def test_other_gfx_archs_are_refused_before_the_import(imports):
    for arch in ("gfx90a", "gfx1100", ""):
        p = dataclasses.replace(qlinear.make_platform("mi300"), gfx_arch=arch)
        for k in ALL:
            ok, why = k.is_supported(p)
            assert not ok and "MI350/MI355 (gfx950)" in why, why
            assert ("MI300 (gfx942)" in why) == (k in BOTH_ARCHS), why
    ok, why = AiterMxFp4LinearKernel.is_supported(qlinear.make_platform("mi300"))  # no FP4 matrix cores on MI300
    assert not ok and "MI350/MI355 (gfx950)" in why and "gfx942" in why
    assert imports["calls"] == []


@pytest.mark.parametrize("preset", ["mi300", "mi355"])
def test_library_missing_is_the_reason(preset, imports):
    for k in (ALL if preset == "mi355" else BOTH_ARCHS):
        ok, why = k.is_supported(qlinear.make_platform(preset))
        assert not ok and why.startswith("amd-aiter not importable: ModuleNotFoundError") and "unverified on hardware" in why, why
    assert imports["calls"] == [library.MODULE]  # tried once, then cached
    with qlinear.simulate_platform(preset):
        sel = qlinear.select(FP8_BLOCK, evaluate_all=True, raise_on_failure=False)
        assert "not importable" in sel.reasons["aiter.AiterFp8BlockScaledLinearKernel"]


@pytest.mark.parametrize("preset,arch", [("mi300", "gfx942"), ("mi355", "gfx950")])
def test_library_present_selects_aiter_on_both_archs(preset, arch, imports):
    imports["mode"], imports["arch"] = "present", arch
    with qlinear.simulate_platform(preset):
        assert qlinear.select(INT8).kernel is AiterInt8ScaledMMLinearKernel
        assert qlinear.select(FP8_TOKEN).kernel is AiterFp8PreshuffledLinearKernel  # per-token x per-channel
        assert qlinear.select(FP8_TENSOR).kernel is AiterFp8HipblasltLinearKernel  # per-tensor both
        assert qlinear.select(FP8_BLOCK).kernel is AiterFp8BlockScaledLinearKernel
        mx = qlinear.select(MXFP4, evaluate_all=True)
        assert (AiterMxFp4LinearKernel in mx.viable) == (arch == "gfx950"), mx.explain()
        sel = qlinear.select(FP8_TOKEN, evaluate_all=True)
        assert AiterFp8CKLinearKernel in sel.viable and "per-tensor" in sel.reasons["aiter.AiterFp8HipblasltLinearKernel"]


def test_fp8_flavour_follows_the_arch():
    assert library.fp8_dtype_for(qlinear.make_platform("mi300")) == torch.float8_e4m3fnuz
    assert library.fp8_dtype_for(qlinear.make_platform("mi355")) == torch.float8_e4m3fn


def test_missing_entry_point_is_named(imports, monkeypatch):
    imports["mode"] = "present"
    real = library._import

    def without_blockscale(name, *a, **k):
        m = real(name)
        del m.gemm_a8w8_blockscale
        return m

    monkeypatch.setattr(library, "_import", without_blockscale)
    ok, why = AiterFp8BlockScaledLinearKernel.is_supported(qlinear.make_platform("mi355"))
    assert not ok and "has no aiter.gemm_a8w8_blockscale" in why
    assert AiterFp8CKLinearKernel.is_supported(qlinear.make_platform("mi355")) == (True, None)


@pytest.mark.parametrize("k", ALL, ids=lambda k: k.__name__)
def test_can_implement_answers_every_default_config(k):
    yes = 0
    for c in default_configs(k.family):
        ok, why = k.can_implement(c)
        assert ok or (isinstance(why, str) and why), (k.__name__, c)
        yes += ok
    assert yes > 0, f"{k.__name__} accepts none of the default {k.family} configs"


def test_can_implement_details():
    ok, why = AiterInt8ScaledMMLinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(False, True, False, (256, 512)))
    assert not ok and "asymmetric" in why
    ok, why = AiterInt8ScaledMMLinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(False, True, True, (250, 512)))
    assert not ok and "16" in why
    ok, why = AiterFp8PreshuffledLinearKernel.can_implement(FP8_TENSOR)
    assert not ok and "per-token" in why
    ok, why = AiterFp8PreshuffledLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 528)))
    assert not ok and "32" in why  # K must fill whole 32-byte shuffle tiles
    ok, why = AiterFp8HipblasltLinearKernel.can_implement(FP8_TOKEN)
    assert not ok and "per-tensor" in why
    assert not AiterFp8CKLinearKernel.can_implement(FP8_BLOCK)[0]
    ok, why = AiterFp8BlockScaledLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 520)))
    assert not ok and "128" in why
