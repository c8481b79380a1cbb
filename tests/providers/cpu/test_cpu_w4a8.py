"""The cpu provider's W4A8 kernel (int4 W4A16 checkpoints x int8-quantized activations).

Checked three ways: against an exact emulation of what it claims to compute (the activation
quantized per row like ``quantize_i8``, times the dequantized weight, in float64: only fp32
rounding may differ), against the W4A16 reference through the conformance kit with the kernel's
stated tolerance (the activation quantization's error on top of W4A16's), and for determinism: the
VNNI and AMX paths, 1 and 2 threads, and a row alone or inside a batch give the same bits."""

import dataclasses

import pytest
import torch

pytest.importorskip("qlinear_cpu")

import qlinear  # noqa: E402
from qlinear import MPLinearLayerConfig, scalar_types, testing  # noqa: E402
from qlinear.formats.reference import dequantize_weight  # noqa: E402
from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear.selection import select  # noqa: E402
from qlinear.settings import reload_settings  # noqa: E402
from qlinear_cpu import caps  # noqa: E402
from qlinear_cpu.mp import CpuAmxWNA16LinearKernel  # noqa: E402
from qlinear_cpu.w4a8 import CpuAmxW4A8LinearKernel as W4A8  # noqa: E402

needs_amx = pytest.mark.skipif(not caps.gate()[0], reason=f"{caps.gate()[1]}")
MS = (1, 2, 3, 16, 17, 33, 128)
U4, U4Z = scalar_types.uint4b8, scalar_types.uint4


@pytest.fixture
def opted_in():
    with qlinear.override_settings(cpu_w4a8=True):
        yield


def _cfg(k, n, wt=U4, g=128, dt=torch.bfloat16, act_order=False, out=None):
    return MPLinearLayerConfig((k, n), (k, n), wt, dt, g, wt == U4Z, act_order, out_type=out)


# ---- opt-in ---------------------------------------------------------------------------------------
def test_off_unless_asked():
    c = _cfg(512, 256)
    with qlinear.override_settings(cpu_w4a8=False):
        ok, why = W4A8.can_implement(c)
        assert not ok and "QLINEAR_CPU_W4A8=1" in why
    with qlinear.override_settings(cpu_w4a8=True):
        assert W4A8.can_implement(c)[0]
        assert not W4A8.can_implement(_cfg(512, 256, scalar_types.uint8b128))[0]
        ok, why = W4A8.can_implement(_cfg(512, 256, g=16))
        assert not ok and "multiple of 32" in why


def test_env_switch(monkeypatch):
    monkeypatch.setenv("QLINEAR_CPU_W4A8", "1")
    try:
        assert reload_settings().cpu_w4a8 is True
        monkeypatch.setenv("QLINEAR_CPU_W4A8", "2")
        with pytest.raises(ValueError, match="QLINEAR_CPU_W4A8"):
            reload_settings()
    finally:
        monkeypatch.delenv("QLINEAR_CPU_W4A8")
        reload_settings()


@needs_amx
def test_selected_only_when_opted_in():
    c = _cfg(512, 256)
    kernels = [CpuAmxWNA16LinearKernel, W4A8]
    with qlinear.override_settings(cpu_w4a8=False):
        sel = select(c, kernels=kernels)
        assert sel.kernel is CpuAmxWNA16LinearKernel
        assert "QLINEAR_CPU_W4A8" in sel.reasons[W4A8.full_name()]
    with qlinear.override_settings(cpu_w4a8=True):
        assert select(c, kernels=kernels).kernel is W4A8


# ---- exact emulation ----------------------------------------------------------------------------
def _emulate(c, params, x, bias):
    """What the kernel computes, in float64: x quantized per row to int8 (symmetric, scale amax / 127
    in fp32, round half to even, as ``quantize_i8``), times the dequantized weight, plus bias."""
    xf = x.float()
    s = (xf.abs().amax(1, keepdim=True) / 127.0).clamp_min(1e-10)
    q = torch.clamp(torch.round(xf / s), -128, 127)
    w = dequantize_weight(c, params, torch.float64)
    out = (q.double() * s.double()) @ w.t()
    return out if bias is None else out + bias.double()


def _layer(c, seed=0):
    n, k = c.N, c.K
    g = torch.Generator().manual_seed(seed)
    params = quantize_layer_params(c, torch.randn(n, k, generator=g) * 0.05, calib_x=torch.randn(8, k, generator=g))
    kern = W4A8.create(c)
    layer = make_layer(c, params)
    kern.process_weights_after_loading(layer)
    return kern, layer, params, g


EXACT_CFGS = {
    "gptq-g128": _cfg(512, 256),
    "gptq-g32": _cfg(512, 256, g=32),
    "gptq-g64-fp16": _cfg(512, 256, g=64, dt=torch.float16),
    "gptq-g96": _cfg(384, 96, g=96),            # 32-deep AMX tiles (group an odd multiple of 32)
    "gptq-g256": _cfg(1024, 64, g=256),         # applied as 128-deep sub-groups
    "gptq-ch-K200": _cfg(200, 100, g=-1),       # K and N padded (K to 224, N to 128)
    "awq-g128": _cfg(512, 256, U4Z),
    "awq-g32-N72": _cfg(256, 72, U4Z, g=32),
    "awq-ch": _cfg(4160, 64, U4Z, g=-1),        # K = 65 x 64: 64-deep sub-groups
    "gptq-g128-actorder": _cfg(512, 256, act_order=True),
    "awq-g64-actorder-fp16": _cfg(512, 128, U4Z, g=64, dt=torch.float16, act_order=True),
}


@needs_amx
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("name", list(EXACT_CFGS))
def test_matches_exact_emulation(opted_in, name, m):
    c = dataclasses.replace(EXACT_CFGS[name], out_type=torch.float32)
    kern, layer, params, g = _layer(c)
    x = (torch.randn(m, c.K, generator=g) * 2).to(c.act_type)
    x[:, :: max(1, c.K // 7)] *= 8  # outlier channels: most codes small, a few at +-127
    bias = torch.randn(c.N, generator=g) if m % 2 else None
    ref = _emulate(c, params, x, bias)
    out = kern.apply(layer, x, None if bias is None else bias.to(c.act_type))
    if bias is not None:  # the kernel got the bias rounded to the activation dtype
        ref = ref - bias.double() + bias.to(c.act_type).double()
    err = float((out.double() - ref).norm() / ref.norm())
    assert err < 2e-6, f"{name} M={m}: relative error {err:.2e} against the exact emulation"


# ---- the conformance kit, against the W4A16 reference ---------------------------------------------
def _kit_cases():
    with qlinear.override_settings(cpu_w4a8=True):
        return [pytest.param(case, id=str(case)) for case in testing.cases_for(W4A8, ms=(1, 17, 128))
                if W4A8.can_implement(case.config)[0]]


@needs_amx
@pytest.mark.parametrize("case", _kit_cases())
def test_conformance(opted_in, case):
    res = testing.run_case(W4A8, case, device="cpu", tolerance=W4A8.TOLERANCE)
    assert res.ran
    # the activation quantization must show (a kernel that skipped it would pass the tolerance too)
    assert res.error > 1e-3


@needs_amx
def test_conformance_kit_runs_and_bad_inputs(opted_in):
    cases = [c for c in testing.cases_for(W4A8, ms=(3,)) if W4A8.can_implement(c.config)[0]]
    assert len(cases) >= 10
    testing.check_bad_inputs(W4A8, device="cpu")


# ---- determinism ----------------------------------------------------------------------------------
@needs_amx
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 16, 17, 33])
@pytest.mark.parametrize("name", ["gptq-g128", "awq-g32-N72", "gptq-g96", "awq-ch"])
def test_vnni_and_amx_paths_identical(opted_in, name, m):
    c = EXACT_CFGS[name]
    kern, layer, _, g = _layer(c)
    x = torch.randn(m, c.K, generator=g).to(c.act_type) * 3
    bias = torch.randn(c.N, generator=g)
    vec = kern.run(layer, x, bias, 64)  # every row on the VNNI path
    amx = kern.run(layer, x, bias, 0)  # every row on AMX tiles
    assert torch.isfinite(amx).all()
    assert torch.equal(vec, amx)
    assert torch.equal(kern.apply_weights(layer, x, bias), amx)


@needs_amx
@pytest.mark.parametrize("m", [1, 3, 33])
def test_results_identical_across_thread_counts(opted_in, m):
    c = _cfg(512, 200, U4Z, g=64)
    kern, layer, _, g = _layer(c)
    x = torch.randn(m, c.K, generator=g).bfloat16()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = kern.apply(layer, x)
        torch.set_num_threads(2)
        b = kern.apply(layer, x)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b)


@needs_amx
def test_batch_invariant(opted_in):
    assert W4A8.batch_invariant
    testing.check_batch_invariance(W4A8, device="cpu")


@needs_amx
@pytest.mark.parametrize("vec_max_m", [0, 64])
def test_non_finite_row_comes_out_nan(opted_in, vec_max_m):
    c = _cfg(512, 256)
    kern, layer, _, g = _layer(c)
    x = torch.randn(4, c.K, generator=g).bfloat16()
    x[1, 7] = float("inf")
    x[2, 300] = float("nan")
    out = kern.run(layer, x, None, vec_max_m)
    assert torch.isnan(out[1]).all() and torch.isnan(out[2]).all()
    assert torch.isfinite(out[0]).all() and torch.isfinite(out[3]).all()
    assert torch.equal(out[3:], kern.run(layer, x[3:], None, vec_max_m))


@needs_amx
def test_empty_batch_and_leading_dims(opted_in):
    c = _cfg(512, 256)
    kern, layer, _, g = _layer(c)
    assert kern.apply(layer, torch.empty(0, c.K, dtype=torch.bfloat16)).shape == (0, c.N)
    x = torch.randn(2, 3, c.K, generator=g).bfloat16()
    out = kern.apply(layer, x)
    assert out.shape == (2, 3, c.N) and torch.equal(out.reshape(6, c.N), kern.apply(layer, x.reshape(6, c.K)))
