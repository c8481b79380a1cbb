"""xpu provider on CPU CI: gating under simulated platforms (xpu, and those where it must not appear),
the torch op schemas it calls, the int4 re-layout against the reference dequantization, and every
kernel's plumbing through the conformance kit against stand-ins of the XPU ops (test doubles that
compute what each op computes; the XPU kernels themselves are unverified: no Intel GPU here)."""

import json
import subprocess
import sys
import types

import pytest
import torch

pytest.importorskip("qlinear_xpu", reason="the xpu provider (providers/xpu) is not installed")

import qlinear  # noqa: E402
from qlinear import quant_key as qk  # noqa: E402
from qlinear import testing  # noqa: E402
from qlinear.config import FP8ScaledMMLinearLayerConfig, MPLinearLayerConfig  # noqa: E402
from qlinear.formats.int_pack import pack_along, unpack_along  # noqa: E402
from qlinear.scalar_type import scalar_types as st  # noqa: E402

from qlinear_xpu import library  # noqa: E402
from qlinear_xpu.fp8 import XpuFp8ScaledMMLinearKernel, XpuKernelsFp8LinearKernel  # noqa: E402
from qlinear_xpu.int4_layout import dequantize_xpu_int4, pack_nibbles, to_xpu_int4, unpack_nibbles  # noqa: E402
from qlinear_xpu.mp import XpuKernelsW4A16LinearKernel, XpuW4A16LinearKernel  # noqa: E402

ALL = [XpuW4A16LinearKernel, XpuKernelsW4A16LinearKernel, XpuFp8ScaledMMLinearKernel, XpuKernelsFp8LinearKernel]
W4_ACTORDER = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, True)
W4 = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)
FP8_TOKEN = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))


@pytest.fixture(autouse=True)
def _fresh():
    library.reset_caches()
    yield
    library.reset_caches()


# ---- stand-ins for the XPU ops ------------------------------------------------------------------
def _convert_weight_to_int4pack(u8, inner_k_tiles):  # opaque on XPU; the stand-in keeps the nibbles it was given
    assert u8.dtype == torch.uint8 and inner_k_tiles == 8 and u8.is_contiguous()
    return u8.clone()


def _weight_int4pack_mm_with_scales_and_zeros(x, packed, group, q_scale, q_zeros):
    assert q_scale.dtype == x.dtype and q_zeros.dtype == torch.int8 and q_scale.shape == q_zeros.shape
    assert q_scale.shape == (x.shape[1] // group, packed.shape[0])
    return (x.double() @ dequantize_xpu_int4(packed, q_scale, q_zeros).t()).to(x.dtype)


def _scaled_mm(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False):
    assert a.dtype == b.dtype == torch.float8_e4m3fn and b.stride(0) == 1  # B column-major, as on CUDA
    tensorwise = scale_a.numel() == 1 and scale_b.numel() == 1
    assert tensorwise or (scale_a.shape == (a.shape[0], 1) and scale_b.shape == (1, b.shape[1]))
    out = (a.double() @ b.double()) * scale_a.double() * scale_b.double()
    return (out + bias.double() if bias is not None else out).to(out_dtype)


def _fp8_gemm(a, b, out_dtype, a_scale, b_scale, bias):
    assert a.dtype == b.dtype == torch.float8_e4m3fn and b.shape == (a.shape[1], b.shape[1])
    assert a_scale.shape in ((1,), (a.shape[0], 1)) and b_scale.shape in ((1,), (b.shape[1],))
    out = (a.double() @ b.double()) * a_scale.double().reshape(-1, 1) * b_scale.double().reshape(1, -1)
    return (out + bias.double() if bias is not None else out).to(out_dtype)


def _int4_gemm_w4a16(a, b, bias, b_scale, b_zp, group_size, g_idx):
    k, n = a.shape[1], b.shape[1]
    assert b.dtype == torch.int32 and b.shape == (k // 8, n) and b_zp.dtype == torch.int8 and b_zp.numel() == 1
    assert b_scale.dtype == a.dtype and b_scale.shape[1] == n
    codes = unpack_along(b.t(), 4, 1).double()  # [N, K]
    g = g_idx.long() if g_idx is not None else torch.arange(k) // (k if group_size == -1 else group_size)
    w = (codes - float(b_zp)) * b_scale.double()[g].t()
    out = a.double() @ w.t()
    return (out + bias.double() if bias is not None else out).to(a.dtype)


ATEN = {"_convert_weight_to_int4pack": _convert_weight_to_int4pack,
        "_weight_int4pack_mm_with_scales_and_zeros": _weight_int4pack_mm_with_scales_and_zeros,
        "_scaled_mm": _scaled_mm}


@pytest.fixture
def fake_xpu(monkeypatch):
    calls = []
    monkeypatch.setattr(library, "aten", lambda name: (calls.append(name), ATEN[name])[1])
    monkeypatch.setattr(library, "_import", lambda name: (calls.append(name), types.ModuleType(name))[1])
    monkeypatch.setattr(library, "xpu_op", lambda name: {"fp8_gemm": _fp8_gemm, "int4_gemm_w4a16": _int4_gemm_w4a16}[name])
    return calls


# ---- discovery and gates ------------------------------------------------------------------------
def test_discovered_with_all_kernels():
    info = qlinear.get_registry().providers["xpu"]
    assert info.ok, info.error
    assert {k.__name__ for k in info.kernels} == {k.__name__ for k in ALL}
    assert all(k.provider == "xpu" and k.backend == "xpu" and "unverified on hardware" in k.notes for k in ALL)


def test_import_never_imports_vllm_xpu_kernels():
    code = ("import sys, qlinear, qlinear_xpu\n"
            "from qlinear import quant_key as qk\n"
            "from qlinear.config import FP8ScaledMMLinearLayerConfig as C\n"
            "c = C(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))\n"
            "for p in ('cpu', 'sm90', 'mi300'):\n"
            "    with qlinear.simulate_platform(p):\n"
            "        qlinear.select(c, evaluate_all=True)\n"
            "print([m for m in sys.modules if m.startswith('vllm_xpu_kernels')])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("preset", ["cpu", "zen5", "sm90", "sm100", "mi300", "mi355"])
def test_not_offered_off_xpu(preset):
    for k in ALL:
        ok, why = k.is_supported(qlinear.make_platform(preset))
        assert not ok and "needs an Intel GPU (XPU)" in why
    with qlinear.simulate_platform(preset):
        for c in (W4, FP8_TOKEN):
            sel = qlinear.select(c, evaluate_all=True, raise_on_failure=False)
            assert not any(k.provider == "xpu" for k in sel.viable)


def test_xpu_selection_and_the_library_gate(monkeypatch):
    calls = []

    def missing(name):
        calls.append(name)
        raise ModuleNotFoundError(f"No module named '{name.split('.')[0]}'")

    monkeypatch.setattr(library, "_import", missing)
    with qlinear.simulate_platform("xpu"):
        assert qlinear.select(W4).kernel is XpuW4A16LinearKernel
        assert "act-order" in qlinear.select(W4_ACTORDER, evaluate_all=True).reasons["xpu.XpuW4A16LinearKernel"]
        sel = qlinear.select(FP8_TOKEN, evaluate_all=True)
        assert sel.kernel is XpuFp8ScaledMMLinearKernel
        why = sel.reasons["xpu.XpuKernelsFp8LinearKernel"]
        assert why.startswith("vllm-xpu-kernels not importable") and "unverified on hardware" in why
    assert calls == [library.KERNELS_MODULE]
    library.reset_caches()
    monkeypatch.setattr(library, "_import", lambda name: types.ModuleType(name))
    with qlinear.simulate_platform("xpu"):
        assert qlinear.select(FP8_TOKEN).kernel is XpuKernelsFp8LinearKernel
        assert qlinear.select(W4).kernel is XpuKernelsW4A16LinearKernel
        assert qlinear.select(W4_ACTORDER).kernel is XpuKernelsW4A16LinearKernel  # the torch op has no act-order


def test_can_implement_details():
    ok, why = XpuW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, -1, False, False))
    assert not ok and "group size" in why
    ok, why = XpuW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, True))
    assert not ok and "act-order" in why
    ok, why = XpuW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint8b128, torch.bfloat16, 128, False, False))
    assert not ok and "4-bit" in why
    assert XpuW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint4, torch.float16, 64, True, False))[0]
    ok, why = XpuKernelsW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint4, torch.float16, 64, True, False))
    assert not ok and "uint4b8" in why
    assert XpuKernelsW4A16LinearKernel.can_implement(MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, -1, False, False))[0]
    ok, why = XpuFp8ScaledMMLinearKernel.can_implement(FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512)))
    assert not ok and "fp8_block" in why


def test_torch_schemas_we_call():
    """The positional arguments we pass, against this torch's op schemas."""
    def args(op):
        return [a.name for a in op.default._schema.arguments]
    assert args(torch.ops.aten._weight_int4pack_mm_with_scales_and_zeros) == ["self", "mat2", "qGroupSize", "qScale", "qZeros"]
    assert args(torch.ops.aten._convert_weight_to_int4pack) == ["self", "innerKTiles"]
    assert args(torch.ops.aten._scaled_mm)[:7] == ["self", "mat2", "scale_a", "scale_b", "bias", "scale_result", "out_dtype"]


def test_op_schemas_in_vllm_xpu_kernels():
    """The op schema we call, found in an installed vllm-xpu-kernels' op library (read as bytes, not
    loaded: loading it needs the oneAPI runtime)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(library.KERNELS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-xpu-kernels is not installed")
    so = next((f for f in dist.files or [] if str(f).endswith("_xpu_C.abi3.so")), None)
    assert so is not None, f"vllm-xpu-kernels {dist.version} has no _xpu_C library"
    data = dist.locate_file(so).read_bytes()
    assert library.FP8_GEMM_SCHEMA.encode() in data and library.INT4_GEMM_W4A16_SCHEMA.encode() in data


# ---- the int4 re-layout ---------------------------------------------------------------------------
def test_nibble_packing_round_trips():
    codes = torch.randint(0, 16, (8, 64), dtype=torch.int32)
    u8 = pack_nibbles(codes)
    assert u8.shape == (8, 32) and u8.dtype == torch.uint8
    assert torch.equal(unpack_nibbles(u8), codes)
    assert int(u8[0, 0]) == int(codes[0, 0]) | (int(codes[0, 1]) << 4)  # element 2i low, 2i+1 high
    with pytest.raises(ValueError, match="codes"):
        pack_nibbles(torch.full((2, 4), 16))


@pytest.mark.parametrize("zero_points", [False, True])
def test_int4_relayout_decodes_to_the_reference(zero_points):
    n, k, g = 64, 256, 64
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32)
    scale = torch.rand(n, k // g) * 0.1 + 0.01
    z = torch.randint(0, 16, (n, k // g), dtype=torch.int32) if zero_points else None
    u8, q_scale, q_zeros = to_xpu_int4(pack_along(codes, 4, 1), scale, z, torch.float32)
    assert q_scale.shape == q_zeros.shape == (k // g, n) and q_zeros.dtype == torch.int8
    zz = (z if zero_points else torch.full_like(scale, 8, dtype=torch.int32)).repeat_interleave(g, 1)
    want = (codes - zz).double() * scale.double().repeat_interleave(g, 1)
    assert torch.equal(dequantize_xpu_int4(u8, q_scale, q_zeros), want)
    assert torch.equal(unpack_along(pack_along(codes, 4, 1), 4, 1), codes)


# ---- plumbing through the conformance kit -------------------------------------------------------
@pytest.mark.parametrize("kernel", ALL, ids=lambda k: k.__name__)
def test_plumbing_through_the_conformance_kit(kernel, fake_xpu):
    with qlinear.simulate_platform("xpu"):
        results = testing.check_kernel(kernel, cases=testing.cases_for(kernel, ms=(1, 5)))
        testing.check_bad_inputs(kernel)
    assert sum(r.ran for r in results) >= 2


def test_the_kit_has_teeth_for_the_int4_zero_points(fake_xpu, monkeypatch):
    import qlinear_xpu.mp as mp

    real = mp.to_xpu_int4
    monkeypatch.setattr(mp, "to_xpu_int4", lambda *a: (lambda u, s, z: (u, s, torch.zeros_like(z)))(*real(*a)))
    with qlinear.simulate_platform("xpu"), pytest.raises(AssertionError):
        testing.check_kernel(XpuW4A16LinearKernel, cases=testing.cases_for(XpuW4A16LinearKernel, ms=(5,)))
