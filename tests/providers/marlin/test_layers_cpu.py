"""The kernel classes' load-time code (pure torch) run on CPU on kit layers, then the kernel's
arithmetic replayed from the repacked tensors (emulate.py) against the weight-only reference. This
checks parameter names, unpacking, scale folding and layouts end to end, without a GPU."""

import pytest
import torch

from qlinear import testing
from qlinear.config import MPLinearLayerConfig
from qlinear.formats import reference_linear
from qlinear.formats.codes import e2m1_decode, e4m3_decode
from qlinear.layers import make_layer
from qlinear.scalar_type import scalar_types
from qlinear_marlin.fp import KERNELS as FLOAT_KERNELS
from qlinear_marlin.fp import group_scales
from qlinear_marlin.mp import MarlinMPLinearKernel
from qlinear_marlin.repack import zero_offset

from .emulate import emulate_tiles


def _fp16_bits_decode(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The kernel's fp_codes_to_half2 on CPU: bit placement into a half, then a power-of-two multiply."""
    c = codes.to(torch.int32)
    if bits == 8:
        h = ((c & 0x80) << 8) | ((c & 0x7F) << 7)
        k = 256.0
    else:
        h = ((c & 0x8) << 12) | ((c & 0x7) << 9)
        k = 16384.0
    return (h.to(torch.int16).view(torch.float16).float() * k).double()


def test_float_code_bit_trick_is_exact():
    e4m3 = torch.arange(256, dtype=torch.uint8)
    finite = (e4m3 & 0x7F) != 0x7F  # 0x7F / 0xFF are NaN in E4M3FN (weights never hold them)
    want = e4m3_decode(e4m3, torch.float64)
    got = _fp16_bits_decode(e4m3, 8)
    assert torch.equal(got[finite], want[finite])
    e2m1 = torch.arange(16, dtype=torch.uint8)
    assert torch.equal(_fp16_bits_decode(e2m1, 4), e2m1_decode(e2m1, torch.float64))


def test_group_scales_fp16_normalises_range():
    s = torch.tensor([[4.4e-6, 1e-5], [3e-6, 2e-6]])
    s16, f = group_scales(s, torch.float16)
    assert 1.0 <= float(s16.float().abs().max()) < 2.0 and f == 2.0 ** -17
    assert torch.allclose(s16.double() * f, s.double(), rtol=1e-3)
    sb, fb = group_scales(s, torch.bfloat16)
    assert fb == 1.0 and sb.dtype == torch.bfloat16
    e4m3_like = torch.tensor([[448.0, 2.0**-9], [1.0, 3.5]])  # NVFP4 scales: exact in fp16, left alone
    s16, f = group_scales(e4m3_like, torch.float16)
    assert f == 1.0 and torch.equal(s16.float(), e4m3_like)


def _run_cpu(kernel_cls, case, **kw):
    params, x, bias = testing.make_case_layer(case, "cpu")
    c = case.config
    ref = reference_linear(c, params, x, bias, quantize_activation=False, dtype=torch.float64)
    layer = make_layer(c, params)
    k = kernel_cls.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias, ref


def _check(out, ref, tol=1e-6):
    err = float((out - ref).norm() / ref.norm())
    assert err < tol, err


MP_CASES = [case for case in testing.cases_for(MarlinMPLinearKernel, ms=(3,))
            if MarlinMPLinearKernel.can_implement(case.config)[0]]
MP_CASES.append(testing.Case(MPLinearLayerConfig((2048, 256), (1024, 256), scalar_types.uint4, torch.float16, 32, True, True), 3))


@pytest.mark.parametrize("case", MP_CASES, ids=str)
def test_mp_layer_load_and_emulate(case):
    k, layer, x, bias, ref = _run_cpu(MarlinMPLinearKernel, case)
    c = case.config
    out = emulate_tiles(x, layer.weight_packed, layer.weight_scale,
                        zm=layer.weight_zero_point if c.zero_points else None,
                        tile_group=k.tile_group(layer), kidx=layer.qlinear_marlin_kidx,
                        group_k=layer.qlinear_marlin_group_k, zero_offset=zero_offset(c.act_type, c.bits))
    if bias is not None:
        out = out + bias.double()
    # the only differences: scales are stored in the activation dtype, as the reference reads them
    _check(out, ref)


FP_CASES = [(kc, case) for kc in FLOAT_KERNELS for case in testing.cases_for(kc, ms=(3,))
            if kc.can_implement(case.config)[0]]


@pytest.mark.parametrize("kc,case", FP_CASES, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_float_layer_load_and_emulate(kc, case):
    k, layer, x, bias, ref = _run_cpu(kc, case)
    wname, sname = k._names
    out = emulate_tiles(x, getattr(layer, wname), getattr(layer, sname), col_scale=layer.qlinear_marlin_col_scale,
                        group_k=layer.qlinear_marlin_group_k, fmt=1)
    if bias is not None:
        out = out + bias.double()
    # group scales are rounded to the 16-bit activation dtype (exact for E4M3 / E8M0 scales)
    _check(out, ref, tol=4e-3)


def test_float_kernels_cover_every_family():
    fams = {kc.family for kc, _ in FP_CASES}
    assert fams == {"fp8", "fp8_block", "nvfp4", "mxfp4", "mxfp8"}


def test_run_picks_the_decode_kernel_and_refuses_it_where_it_does_not_apply(monkeypatch):
    """runtime.run: 4-bit codes with K a multiple of 128 take the decode kernel up to decode_max_m rows;
    a forced decode call that the kernel cannot take is refused in Python, before the extension."""
    from qlinear_marlin import runtime

    calls = []

    class Ext:  # records the binding's arguments; the decode mode is the 12th, the PDL flag the 14th, the warps the 16th
        def mp_gemm(self, x, *a):
            calls.append(a[10])
            assert a[12] == 0  # no PDL off CUDA
            assert a[14] == runtime.DECODE_WARPS  # 0 by default: the launcher's rule
            return torch.zeros(x.shape[0], 64, dtype=x.dtype)

    monkeypatch.setattr(runtime, "extension", lambda: Ext())
    monkeypatch.setattr(runtime, "_sm_count", lambda device: 132)
    s = torch.zeros(1, 1, 8, 8, dtype=torch.bfloat16)
    for k, m, expect in ((128, 1, 1), (256, 16, 1), (256, 17, 0), (96, 1, 0)):
        w = torch.zeros(1, k // 16, 32, 4, dtype=torch.int32)
        runtime.run(torch.zeros(m, k, dtype=torch.bfloat16), 64, w, s, group_k=k, fmt=runtime.INT_CODES)
        assert calls[-1] == expect, (k, m)
    w8 = torch.zeros(1, 8, 32, 8, dtype=torch.int32)  # 8-bit codes: the tile kernel
    runtime.run(torch.zeros(1, 128, dtype=torch.bfloat16), 64, w8, s, group_k=128, fmt=runtime.INT_CODES)
    assert calls[-1] == 0
    n = len(calls)
    with pytest.raises(ValueError, match="decode kernel takes"):
        runtime.run(torch.zeros(1, 96, dtype=torch.bfloat16), 64, torch.zeros(1, 6, 32, 4, dtype=torch.int32), s,
                    group_k=96, fmt=runtime.INT_CODES, decode=1)
    assert len(calls) == n  # never reached the extension
