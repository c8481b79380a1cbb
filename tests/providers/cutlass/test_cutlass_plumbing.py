"""CPU test of the provider's Python side against a stand-in extension: every binding function
re-implemented in torch with the argument checks of ``csrc/binding.cpp`` (dtypes, shapes, scale
lengths, padding, the group-major block scales), so the conformance kit runs the kernels' whole
load-and-apply path here: re-lays, quantizer calls, scale and zero-point plumbing, tile choice,
padding and slicing. The CUDA arithmetic itself is checked on the GPU (test_cutlass_gpu.py)."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.formats.fp8 import quantize_fp8_activation  # noqa: E402
from qlinear.formats.int8 import quantize_int8_activation  # noqa: E402
from qlinear_cutlass import build, configs  # noqa: E402
from qlinear_cutlass.fp8 import CutlassFP8ScaledMMLinearKernel  # noqa: E402
from qlinear_cutlass.fp8_block import CutlassFp8BlockScaledMMLinearKernel  # noqa: E402
from qlinear_cutlass.int8 import CutlassInt8ScaledMMLinearKernel  # noqa: E402

FP8 = torch.float8_e4m3fn
OUT = (torch.bfloat16, torch.float16)


class StandInExtension:
    """The extension's functions in torch; ``calls`` records (name, config) for the tile checks."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def _vec(t, name, dtype, full):
        assert t.dtype == dtype and t.is_contiguous(), f"{name}: {t.dtype}, contiguous={t.is_contiguous()}"
        assert t.numel() in (1, full), f"{name}: {t.numel()} elements, expected 1 or {full}"

    def scaled_mm(self, out, a, b, a_scale, b_scale, bias, azp, azp_adj, config):
        self.calls.append(("scaled_mm", config))
        is_int = a.dtype == torch.int8
        assert a.dtype in (torch.int8, FP8) and b.dtype == a.dtype
        m, k = a.shape
        n = b.shape[0]
        assert b.shape == (n, k) and b.is_contiguous() and a.stride(1) == 1 and a.stride(0) % 16 == 0
        assert out.shape == (m, n) and out.dtype in OUT and out.stride(1) == 1
        assert k % 16 == 0 and n % 16 == 0 and config in (0, 1, 2)
        self._vec(a_scale, "a_scale", torch.float32, m)
        self._vec(b_scale, "b_scale", torch.float32, n)
        if bias is not None:
            assert bias.dtype == out.dtype and bias.numel() == n and bias.is_contiguous()
        assert (azp is None) == (azp_adj is None) and (is_int or azp is None)
        acc = a.double() @ b.double().t()
        if azp is not None:
            self._vec(azp, "azp", torch.int32, m)
            assert azp_adj.dtype == torch.int32 and azp_adj.numel() == n
            acc = acc - azp.double().reshape(-1, 1) * azp_adj.double().reshape(1, -1)
        r = a_scale.double().reshape(-1, 1) * (b_scale.double().reshape(1, -1) * acc)
        if bias is not None:
            r = r + bias.double()
        out.copy_(r)

    @staticmethod
    def _x(x, q):
        assert x.dtype in OUT and x.dim() == 2 and x.stride(1) == 1 and x.stride(0) % 8 == 0
        assert q.shape == x.shape and q.is_contiguous()

    def quant_per_token(self, x, q, scale, zp, ub):
        self._x(x, q)
        m = x.shape[0]
        assert scale.dtype == torch.float32 and scale.numel() == m
        if q.dtype == FP8:
            assert zp is None
            rq, rs = quantize_fp8_activation(x, "token", scale_ub=ub)
        else:
            assert ub is None and (zp is None or (zp.dtype == torch.int32 and zp.numel() == m))
            rq, rs, rzp = quantize_int8_activation(x, zp is None)
            if zp is not None:
                zp.copy_(rzp.reshape(-1))
        q.copy_(rq)
        scale.copy_(rs.reshape(-1))

    def quant_static(self, x, q, scale, zp):
        self._x(x, q)
        assert scale.dtype == torch.float32 and scale.numel() == 1
        if q.dtype == FP8:
            assert zp is None
            q.copy_(quantize_fp8_activation(x, "tensor", scale=scale)[0])
        else:
            assert zp is None or (zp.dtype == torch.int32 and zp.numel() == 1)
            q.copy_(quantize_int8_activation(x, zp is None, scale=scale, zero_point=zp)[0])

    def quant_per_tensor_fp8(self, x, q, scale, amax_ws):
        self._x(x, q)
        assert q.dtype == FP8 and scale.numel() == 1 and amax_ws.dtype == torch.float32
        rq, rs = quantize_fp8_activation(x, "tensor")
        q.copy_(rq)
        scale.copy_(rs)

    def quant_per_group_fp8(self, x, q, scale_t):
        m, k = x.shape
        assert q.dtype == FP8 and q.is_contiguous() and q.shape[1] == k and q.shape[0] >= m
        assert scale_t.dtype == torch.float32 and scale_t.is_contiguous() and scale_t.shape[0] == k // 128
        assert scale_t.shape[1] >= m and k % 128 == 0
        rq, rs = quantize_fp8_activation(x, "group")
        q[:m].copy_(rq)
        scale_t[:, :m].copy_(rs.t())

    def block_fp8_mm(self, out, a, b, sfa_t, sfb, bias, config):
        self.calls.append(("block_fp8_mm", config))
        mp, k = a.shape
        n = b.shape[0]
        assert a.dtype == FP8 and b.dtype == FP8 and mp % 4 == 0 and n % 128 == 0 and k % 128 == 0
        assert a.is_contiguous() and b.is_contiguous() and out.is_contiguous() and out.shape == (mp, n)
        assert sfa_t.shape == (k // 128, mp) and sfa_t.is_contiguous() and sfa_t.dtype == torch.float32
        assert sfb.shape == (n // 128, k // 128) and sfb.is_contiguous() and sfb.dtype == torch.float32
        assert config in (0, 2)
        assert torch.isfinite(a[:, :].double()).all() and torch.isfinite(sfa_t).all()  # padding rows included
        da = a.double() * sfa_t.double().t().repeat_interleave(128, 1)
        db = b.double() * sfb.double().repeat_interleave(128, 0).repeat_interleave(128, 1)
        r = da @ db.t()
        if bias is not None:
            assert bias.dtype == out.dtype and bias.numel() == n
            r = r + bias.double()
        out.copy_(r)


@pytest.fixture
def ext(monkeypatch):
    fake = StandInExtension()
    monkeypatch.setattr(build, "load_extension", lambda: fake)
    return fake


runnable = testing.gate_lifted


KERNELS = [CutlassFP8ScaledMMLinearKernel, CutlassInt8ScaledMMLinearKernel, CutlassFp8BlockScaledMMLinearKernel]


@pytest.mark.parametrize("kc,case", [(kc, c) for kc in KERNELS for c in testing.cases_for(kc, ms=(1, 33))],
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_conformance_through_the_stand_in(ext, kc, case):
    testing.run_case(runnable(kc), case)


@pytest.mark.parametrize("kc", KERNELS, ids=lambda k: k.__name__)
def test_tile_choice_per_m(ext, kc, monkeypatch):
    c = next(c for c in testing.default_configs(kc.family) if kc.can_implement(c)[0])
    for m, want in ((1, 0), (64, 0), (65, 1), (128, 1), (129, 2)):
        ext.calls.clear()
        testing.run_case(runnable(kc), testing.Case(c, m))
        got = ext.calls[-1][1]
        assert got == (want if kc is not CutlassFp8BlockScaledMMLinearKernel else (0 if m <= 64 else 2)), (m, got)
    monkeypatch.setenv("QLINEAR_CUTLASS_TILE", "large")
    testing.run_case(runnable(kc), testing.Case(c, 3))
    assert ext.calls[-1][1] == configs.LARGE


def test_bad_inputs_through_the_stand_in(ext):
    for kc in KERNELS:
        testing.check_bad_inputs(runnable(kc))


def test_block_rejects_fp8_input(ext):
    from qlinear.layers import make_layer

    c = next(c for c in testing.default_configs("fp8_block") if CutlassFp8BlockScaledMMLinearKernel.can_implement(c)[0])
    params, x, bias = testing.make_case_layer(testing.Case(c, 4), "cpu")
    layer = make_layer(c, params)
    k = runnable(CutlassFp8BlockScaledMMLinearKernel).create(c)
    k.process_weights_after_loading(layer)
    with pytest.raises(ValueError, match="x.dtype"):
        k.apply_weights(layer, x.to(FP8))
