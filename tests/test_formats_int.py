"""qlinear.formats int_pack (GPTQ/AWQ int32 packing, wNa16) and int8 (W8A8 INT8 conventions).

Judged against hand-built words, a naive per-element Python decoder written here, and the numpy
decoders of ``test_formats_spec.py``.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from qlinear import formats as F
from qlinear.scalar_type import scalar_types


import qlinear_tests_formats_spec as S  # noqa: E402 - the independent decoders (tests/conftest.py)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- pack_along / unpack_along ---------------------------------------------------------------------
def test_pack_along_hand_built_words():
    # 4-bit: codes 1..8 along K -> 0x87654321; bit 31 is set, so the int32 word is negative
    w = F.pack_along(torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]), 4, 1)
    assert w.dtype == torch.int32 and w.tolist() == [[0x87654321 - (1 << 32)]]
    # 8-bit: code j at bits [8j, 8j+8)
    w8 = F.pack_along(torch.tensor([[0x01, 0x02, 0x03, 0xF0]]), 8, 1)
    assert w8.tolist() == [[0xF0030201 - (1 << 32)]]
    # along dim 0: the same codes as a column
    w0 = F.pack_along(torch.tensor([[1], [2], [3], [4], [5], [6], [7], [8]]), 4, 0)
    assert w0.shape == (1, 1) and w0.tolist() == [[0x87654321 - (1 << 32)]]
    assert F.unpack_along(w0, 4, 0)[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    # all ones -> -1; all zeros -> 0
    assert F.pack_along(torch.full((2, 8), 15), 4, 1).tolist() == [[-1], [-1]]
    assert F.pack_along(torch.full((4, 2), 255), 8, 0).tolist() == [[-1, -1]]


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dim", [0, 1])
def test_pack_along_round_trip(bits, dim):
    pf = 32 // bits
    shape = [3 * pf, 5 * pf]
    c = torch.randint(0, 1 << bits, shape, generator=_gen(bits + dim), dtype=torch.int32)
    c.movedim(dim, -1)[..., pf - 1::pf] = (1 << bits) - 1  # the top code of every word: bit 31 set, negative words
    w = F.pack_along(c, bits, dim)
    want_shape = list(shape)
    want_shape[dim] //= pf
    assert list(w.shape) == want_shape and w.dtype == torch.int32 and w.is_contiguous()
    assert (w < 0).all()
    back = F.unpack_along(w, bits, dim)
    assert back.dtype == torch.int32 and torch.equal(back, c)
    assert np.array_equal(S.unpack_words(w.numpy(), bits, dim), c.numpy())  # the independent unpacker agrees


def test_pack_along_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="codes.shape"):
        F.pack_along(torch.zeros(4, 12, dtype=torch.int32), 4, 1)  # 12 not a multiple of 8
    with pytest.raises(ValueError, match="codes.shape"):
        F.pack_along(torch.zeros(6, 4, dtype=torch.int32), 8, 0)  # 6 not a multiple of 4
    with pytest.raises(ValueError, match="codes"):
        F.pack_along(torch.full((1, 8), 16), 4, 1)  # 16 does not fit 4 bits
    with pytest.raises(ValueError, match="codes"):
        F.pack_along(torch.full((1, 8), -1), 4, 1)
    with pytest.raises(ValueError, match="codes"):
        F.pack_along(torch.full((1, 4), 256), 8, 1)


# ---- dequantize_wna16 vs a naive per-element decoder --------------------------------------------------
def naive_wna16(weight_type, packed, scale, zp_packed, g_idx, group_size, n, k) -> list[list[float]]:
    """One element at a time, straight from the compressed-tensors layout description."""
    bits = weight_type.size_bits
    pf, mask = 32 // bits, (1 << bits) - 1
    out = [[0.0] * k for _ in range(n)]
    for r in range(n):
        for c in range(k):
            word = int(packed[r, c // pf]) & 0xFFFFFFFF
            code = (word >> ((c % pf) * bits)) & mask
            g = int(g_idx[c]) if g_idx is not None else c // (k if group_size == -1 else group_size)
            if zp_packed is not None:
                zword = int(zp_packed[r // pf, g]) & 0xFFFFFFFF
                z = (zword >> ((r % pf) * bits)) & mask
            else:
                z = weight_type.bias
            out[r][c] = (code - z) * float(scale[r, g])
    return out


WNA16 = [
    (scalar_types.uint4b8, False, -1, False),
    (scalar_types.uint4b8, False, 16, False),
    (scalar_types.uint4b8, False, 16, True),
    (scalar_types.uint8b128, False, 16, False),
    (scalar_types.uint8b128, False, 32, True),
    (scalar_types.uint4, True, 16, False),
    (scalar_types.uint4, True, -1, False),
    (scalar_types.uint4, True, 16, True),
    (scalar_types.uint8, True, 32, False),
]


@pytest.mark.parametrize("wt,zp,group,act_order", WNA16, ids=lambda v: str(v))
@pytest.mark.parametrize("sdt", [torch.bfloat16, torch.float16])
def test_dequantize_wna16_vs_naive_decoder(wt, zp, group, act_order, sdt):
    n, k = 16, 64
    g = torch.Generator().manual_seed(7)
    w = torch.randn(n, k, generator=g) * 0.05 + (0.02 if zp else 0.0)  # asym: a skewed range
    gi = F.act_order_g_idx(k, group, generator=g) if act_order else None
    p = F.quantize_wna16(w, wt, group, zp, gi, scale_dtype=sdt)
    ngroups = 1 if group == -1 else k // group
    assert p["weight_packed"].shape == (n, k * wt.size_bits // 32) and p["weight_packed"].dtype == torch.int32
    assert p["weight_scale"].shape == (n, ngroups) and p["weight_scale"].dtype == sdt
    if zp:
        assert p["weight_zero_point"].shape == (n * wt.size_bits // 32, ngroups)
    if act_order:
        assert torch.equal(p["weight_g_idx"], gi) and p["weight_g_idx"].dtype == torch.int32
        assert len(set(gi.tolist())) == ngroups and not torch.equal(gi, F.default_g_idx(k, group))
    # random codes too (the quantizer's codes never reach some values): decode must be right for all
    packed_list = [p["weight_packed"]]
    packed_list.append(F.pack_along(torch.randint(0, 1 << wt.size_bits, (n, k), generator=g), wt.size_bits, 1))
    for packed in packed_list:
        deq = F.dequantize_wna16(wt, packed, p["weight_scale"], p.get("weight_zero_point"), p.get("weight_g_idx"),
                                 group, torch.float64)
        want = naive_wna16(wt, packed, p["weight_scale"], p.get("weight_zero_point"), gi, group, n, k)
        assert deq.dtype == torch.float64
        assert deq.tolist() == want  # exact: small ints times 16-bit scales are exact in float64
        spec = S.wna16_dequant(wt.size_bits, wt.bias, packed.numpy(), p["weight_scale"].double().numpy(),
                               None if not zp else p["weight_zero_point"].numpy(), None if gi is None else gi.numpy(), group)
        assert np.array_equal(spec, np.array(want))
    # float32 output is exact too (what the emulation provider caches)
    d32 = F.dequantize_wna16(wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), p.get("weight_g_idx"), group)
    assert d32.dtype == torch.float32 and torch.equal(d32.double(), F.dequantize_wna16(
        wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), p.get("weight_g_idx"), group, torch.float64))


# ---- quantize_wna16 error bound -------------------------------------------------------------------------
@pytest.mark.parametrize("wt,zp,group,act_order", WNA16, ids=lambda v: str(v))
def test_quantize_wna16_error_bound(wt, zp, group, act_order):
    """Per element |w - deq| <= scale/2 (+ float eps), with the stored (16-bit-rounded) scale.

    Symmetric (uint4b8 / uint8b128): scale = amax / qmax_pos rounded to bf16 (relative error <= 2**-8),
    so |w|/scale <= qmax_pos * (1 + 2**-8) < qmax_pos + 0.5: no element is clamped, the most negative code
    (-8 / -128) is never produced, and the bound holds for every element.
    Asymmetric (uint4 / uint8 + zero point): round(w/s) + round(-min/s) can reach 2**bits when both round
    up (range/s = qmax * (1 + 2**-8)); that element is clamped to qmax and its error is at most
    s * (1/2 + qmax * 2**-8). Every unclamped element obeys the s/2 bound; clamped ones the looser bound.
    """
    n, k = 64, 128
    g = torch.Generator().manual_seed(8)
    w = torch.randn(n, k, generator=g) * torch.exp2(torch.randint(-6, 2, (n, 1), generator=g).float())
    gi = F.act_order_g_idx(k, group, generator=g) if act_order else None
    p = F.quantize_wna16(w, wt, group, zp, gi, scale_dtype=torch.bfloat16)
    deq = F.dequantize_wna16(wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), p.get("weight_g_idx"),
                             group, torch.float64)
    gidx = (gi if gi is not None else F.default_g_idx(k, k if group == -1 else group)).long()
    s = p["weight_scale"].double()[:, gidx]
    err = (w.double() - deq).abs()
    eps = 1e-6 * s  # float32 / float64 rounding of w/s
    qmax = (1 << wt.size_bits) - 1
    codes = F.unpack_along(p["weight_packed"], wt.size_bits, 1)
    if not zp:
        assert (err <= s / 2 + eps).all(), float((err / s).max())
        assert codes.min() >= 1  # the -8 / -128 code is never produced (see docstring)
    else:
        z = F.unpack_along(p["weight_zero_point"], wt.size_bits, 0)[:n][:, gidx].double()
        raw = torch.round(w.double() / s) + z  # the code before clamping to [0, qmax]
        clamped = (raw < 0) | (raw > qmax)
        assert (err[~clamped] <= s[~clamped] / 2 + eps[~clamped]).all(), float((err / s)[~clamped].max())
        assert (err <= s * (0.5 + qmax * 2.0 ** -8) + eps).all(), float((err / s).max())
        assert (raw >= 0).all()  # the low side never clamps: round(min/s) + round(-min/s) == 0


def test_quantize_wna16_bad_inputs_name_the_field():
    w = torch.randn(8, 48)
    with pytest.raises(ValueError, match="group_size"):
        F.quantize_wna16(w, scalar_types.uint4b8, 32, False)  # K=48 not a multiple of 32
    with pytest.raises(ValueError, match="codes.shape"):
        F.quantize_wna16(torch.randn(8, 36), scalar_types.uint4b8, -1, False)  # K=36 not a multiple of 8 (pack factor)
    with pytest.raises(ValueError, match="codes.shape"):
        F.quantize_wna16(torch.randn(6, 64), scalar_types.uint4, 32, True)  # zero points pack along N: 6 % 8
    with pytest.raises(ValueError, match="w.shape"):
        F.quantize_wna16(torch.randn(8), scalar_types.uint4b8, -1, False)
    with pytest.raises(ValueError, match="g_idx"):
        F.quantize_wna16(w, scalar_types.uint4b8, 16, False, torch.zeros(48, dtype=torch.int32))  # uneven groups
    with pytest.raises(ValueError, match="g_idx"):
        F.quantize_wna16(w, scalar_types.uint4b8, 16, False, torch.full((48,), 3, dtype=torch.int32))  # out of range
    p = F.quantize_wna16(w, scalar_types.uint4b8, 16, False)
    with pytest.raises(ValueError, match="weight_scale.shape"):
        F.dequantize_wna16(scalar_types.uint4b8, p["weight_packed"], p["weight_scale"][:, :2], group_size=16)


# ---- INT8 ------------------------------------------------------------------------------------------------
def _x(m=33, k=160, seed=9):
    g = _gen(seed)
    x = torch.randn(m, k, generator=g) * torch.exp2(torch.randint(-4, 4, (m, 1), generator=g).float())
    x[:, ::17] *= 5
    return x


@pytest.mark.parametrize("channelwise", [False, True])
def test_quantize_int8_weight(channelwise):
    w = _x(48, 96, 10)
    q, s = F.quantize_int8_weight(w, channelwise)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == ((48, 1) if channelwise else (1,))
    sd = s.double().reshape(-1, 1) if channelwise else s.double()
    amax = w.abs().amax(1, keepdim=True) if channelwise else w.abs().amax()
    assert torch.allclose(s.reshape(amax.shape), (amax / 127).float(), rtol=1e-6, atol=0)
    err = (w.double() - q.double() * sd).abs()
    assert (err <= sd / 2 * (1 + 1e-5)).all()
    assert q.abs().max() <= 127


def test_int8_activation_symmetric_dynamic():
    x = _x()
    q, s, zp = F.quantize_int8_activation(x, True)
    assert q.dtype == torch.int8 and s.shape == (33, 1) and zp is None
    assert torch.allclose(s.double(), x.double().abs().amax(1, keepdim=True) / 127, rtol=1e-6, atol=0)
    err = (x.double() - q.double() * s.double()).abs()
    assert (err <= s.double() / 2 * (1 + 1e-5)).all()
    assert np.allclose(q.double().numpy() * s.double().numpy(), S.int8_act_qdq(x.numpy(), True), rtol=0,
                       atol=float(s.max()) * 1.0001)  # at most one step off (fp32 vs fp64 at a rounding boundary)


def test_int8_activation_asymmetric_dynamic():
    x = _x() + 0.7  # skewed rows
    q, s, zp = F.quantize_int8_activation(x, False)
    assert q.dtype == torch.int8 and s.shape == (33, 1) and zp.shape == (33, 1) and zp.dtype == torch.int32
    xd = x.double()
    lo, hi = xd.amin(1, keepdim=True).clamp(max=0), xd.amax(1, keepdim=True).clamp(min=0)
    assert torch.allclose(s.double(), (hi - lo) / 255, rtol=1e-6, atol=0)
    assert torch.equal(zp.double(), torch.round(-128 - lo / s.double()))
    deq = (q.double() - zp.double()) * s.double()
    # every value is in range for a dynamic scale; a clamp at 127 only happens at an exact tie (error s/2)
    assert ((xd - deq).abs() <= s.double() / 2 * (1 + 1e-5)).all()
    # the row's min and max are representable within s/2, and 0 maps to an integer code (zp)
    assert (q.int() >= -128).all() and (q.int() <= 127).all()


@pytest.mark.parametrize("symmetric", [True, False])
def test_int8_activation_static(symmetric):
    calib = _x(16, 160, 11)
    s, zp = F.int8_static_scale(calib, symmetric)
    assert s.shape == (1,) and s.dtype == torch.float32 and (zp is None) == symmetric
    if not symmetric:
        assert zp.shape == (1,) and zp.dtype == torch.int32
    x = _x(9, 160, 12) * 1.5  # partly out of the calibrated range
    q, s2, zp2 = F.quantize_int8_activation(x, symmetric, s, zp)
    assert torch.equal(s2, s) and (zp2 is None) == symmetric
    z = 0.0 if symmetric else zp.double()
    raw = torch.round(x.double() / s.double()) + z
    inr = (raw >= -128) & (raw <= 127)
    assert inr.float().mean() > 0.5 and (~inr).any()  # both kinds of value are exercised
    deq = (q.double() - z) * s.double()
    assert ((x.double() - deq).abs()[inr] <= s.double() / 2 * (1 + 1e-5)).all()
    assert torch.equal(q[~inr].int(), torch.where(raw[~inr] > 0, 127, -128).int())  # out of range: saturated
    assert np.allclose(deq.numpy(), S.int8_act_qdq(x.numpy(), symmetric, float(s), None if symmetric else int(zp)),
                       rtol=0, atol=float(s) * 1.0001)


def test_azp_adj_identity_exact():
    g = _gen(13)
    w_nk = torch.randint(-128, 128, (24, 40), generator=g, dtype=torch.int8)
    w_kn = w_nk.t()  # the as-loaded [K, N] view
    adj = F.azp_adj(w_kn)
    assert adj.dtype == torch.int32 and adj.shape == (24,)
    x = _x(7, 40, 14)
    q, s, zp = F.quantize_int8_activation(x, False)
    lhs = (q.long() - zp.long()) @ w_kn.long()
    rhs = q.long() @ w_kn.long() - zp.long() * adj.long()
    assert torch.equal(lhs, rhs)
    assert torch.equal(adj.long(), w_nk.long().sum(1))  # column sums of [K, N] = row sums of [N, K]


@pytest.mark.parametrize("wt,zp", [(scalar_types.uint4b8, False), (scalar_types.uint4, True)], ids=str)
def test_quantize_wna16_zero_group_float16_scales(wt, zp):
    w = torch.randn(8, 64, generator=_gen(15)) * 0.05
    w[:, :32] = 0  # an all-zero group (pruned / padded weights)
    p = F.quantize_wna16(w, wt, 32, zp, scale_dtype=torch.float16)
    assert (p["weight_scale"] > 0).all()
    deq = F.dequantize_wna16(wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), None, 32, torch.float64)
    assert (deq[:, :32] == 0).all()
