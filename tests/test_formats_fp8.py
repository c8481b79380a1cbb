"""qlinear.formats.fp8: FP8 E4M3 weights (tensor / channel / 128x128 block) and activations
(tensor static or dynamic / token with optional upper bound / 1 x 128 group).

Error bound used throughout: with v = w / s (s the fp32 scale), the code q obeys
|v - q| <= half an E4M3 ulp at |v| (ulp = 2**(max(floor(log2|v|), -6) - 3)), i.e. at most 1/16 of |v|
for normal values, plus a 1e-6 relative allowance for the fp32 rounding of w / s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlinear import formats as F
from qlinear.formats.fp8 import MIN_SCALE


import qlinear_tests_formats_spec as S  # noqa: E402 - the independent decoders (tests/conftest.py)


def _data(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.exp2(torch.randint(-8, 3, (n, 1), generator=g).float())
    w[:, ::31] *= 8  # outlier columns
    return w


def half_ulp_e4m3(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    e = np.maximum(np.where(a > 0, S.floor_log2(np.where(a > 0, a, 1.0)), -6), -6)
    return np.ldexp(0.5, e - 3)


def assert_within_half_ulp(x: torch.Tensor, q: torch.Tensor, s_full: torch.Tensor):
    assert q.dtype == torch.float8_e4m3fn
    qd = q.double().numpy()
    assert not np.isnan(qd).any()
    v = (x.double() / s_full.double()).numpy()
    vc = np.clip(v, -448, 448)  # beyond 448 the value saturates (only for static / bounded scales)
    err = np.abs(vc - qd)
    bound = half_ulp_e4m3(vc) + 1e-6 * np.abs(vc)
    assert (err <= bound).all(), float((err / bound).max())
    # and q is the round-to-nearest-even code of the fp32 quotient (independent encoder)
    v32 = (x.float() / s_full.float()).double().numpy()
    assert np.array_equal(qd, S.e4m3_round(v32))


def _expand(s: torch.Tensor, bn: int, bk: int, n: int, k: int) -> torch.Tensor:
    """Independent block expansion: element (i, j) takes scale[i // bn, j // bk]."""
    i = torch.arange(n)[:, None] // bn
    j = torch.arange(k)[None, :] // bk
    return s[i, j]


# ---- weights -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(64, 96), (37, 53)])
def test_fp8_weight_tensor(n, k):
    w = _data(n, k, 1)
    q, s = F.quantize_fp8_weight(w, "tensor")
    assert q.shape == (n, k) and s.shape == (1,) and s.dtype == torch.float32
    assert float(s) == pytest.approx(float(w.abs().max()) / 448, rel=1e-6)
    assert_within_half_ulp(w, q, s.expand(n, k))
    assert float(q.float().abs().max()) == 448.0  # the largest element maps to the top of the range


@pytest.mark.parametrize("n,k", [(64, 96), (37, 53)])
def test_fp8_weight_channel(n, k):
    w = _data(n, k, 2)
    q, s = F.quantize_fp8_weight(w, "channel")
    assert s.shape == (n, 1)
    assert torch.allclose(s.double(), w.double().abs().amax(1, keepdim=True) / 448, rtol=1e-6, atol=0)
    assert_within_half_ulp(w, q, s.expand(n, k))
    assert torch.equal(q.float().abs().amax(1), torch.full((n,), 448.0))


@pytest.mark.parametrize("n,k", [(256, 384), (300, 520), (129, 127), (64, 200)])
def test_fp8_weight_block_ragged(n, k):
    w = _data(n, k, 3)
    q, s = F.quantize_fp8_weight(w, "block")
    assert q.shape == (n, k) and s.shape == (math.ceil(n / 128), math.ceil(k / 128)) and s.dtype == torch.float32
    # each block's scale from its own (ragged) elements, by explicit slicing
    for bi in range(s.shape[0]):
        for bj in range(s.shape[1]):
            blk = w[bi * 128:(bi + 1) * 128, bj * 128:(bj + 1) * 128]
            assert float(s[bi, bj]) == pytest.approx(max(float(blk.abs().max()) / 448, MIN_SCALE), rel=1e-6)
    assert_within_half_ulp(w, q, _expand(s, 128, 128, n, k))
    assert torch.equal(F.expand_blocks(s, (128, 128), (n, k)), _expand(s, 128, 128, n, k))
    # dequantize_fp8 with blocks is q * expanded scale
    assert torch.equal(F.dequantize_fp8(q, s, (128, 128), torch.float64), q.double() * _expand(s, 128, 128, n, k).double())


def test_fp8_weight_block_other_shape_and_zero_block():
    w = _data(96, 80, 4)
    w[:32, :16] = 0  # an all-zero block: scale floors at MIN_SCALE, codes are zeros (no 0/0)
    q, s = F.quantize_fp8_weight(w, "block", (32, 16))
    assert s.shape == (3, 5)
    assert float(s[0, 0]) == float(torch.tensor(MIN_SCALE, dtype=torch.float32)) and (q[:32, :16].float() == 0).all()
    assert_within_half_ulp(w, q, _expand(s, 32, 16, 96, 80))


def test_fp8_weight_bad_granularity():
    with pytest.raises(ValueError, match="granularity"):
        F.quantize_fp8_weight(torch.randn(4, 4), "row")


# ---- activations --------------------------------------------------------------------------------------
def test_fp8_activation_dynamic_tensor_and_token():
    x = _data(33, 160, 5)
    q, s = F.quantize_fp8_activation(x, "tensor")
    assert s.shape == (1,) and float(s) == pytest.approx(float(x.abs().max()) / 448, rel=1e-6)
    assert_within_half_ulp(x, q, s.expand_as(x))
    q, s = F.quantize_fp8_activation(x, "token")
    assert s.shape == (33, 1)
    assert torch.allclose(s.double(), x.double().abs().amax(1, keepdim=True) / 448, rtol=1e-6, atol=0)
    assert_within_half_ulp(x, q, s.expand_as(x))
    deq = F.dequantize_fp8(q, s, dtype=torch.float64).numpy()
    assert np.allclose(deq, S.fp8_act_qdq(x.numpy(), "token"), rtol=1e-6, atol=0)


@pytest.mark.parametrize("k", [256, 300, 100])
def test_fp8_activation_group(k):
    x = _data(9, k, 6)
    q, s = F.quantize_fp8_activation(x, "group")
    assert s.shape == (9, math.ceil(k / 128))
    for j in range(s.shape[1]):
        want = (x[:, j * 128:(j + 1) * 128].double().abs().amax(1) / 448).clamp(min=MIN_SCALE)
        assert torch.allclose(s[:, j].double(), want, rtol=1e-6, atol=0)
    assert_within_half_ulp(x, q, _expand(s, 1, 128, 9, k))
    q64, s64 = F.quantize_fp8_activation(x, "group", group=64)
    assert s64.shape == (9, math.ceil(k / 64))
    assert_within_half_ulp(x, q64, _expand(s64, 1, 64, 9, k))


def test_fp8_activation_static_saturates():
    x = _data(8, 64, 7)
    s = (x.abs().max() / 448 / 2).reshape(1)  # half the needed range: the top values must saturate, not NaN
    q, s2 = F.quantize_fp8_activation(x, "tensor", scale=s)
    assert torch.equal(s2, s.float())
    assert_within_half_ulp(x, q, s.expand_as(x))
    assert (q.float().abs() == 448).any()


def test_fp8_activation_token_scale_ub():
    x = _data(16, 64, 8)
    amax = x.abs().amax(1, keepdim=True)
    ub = amax.median().reshape(1)
    q, s = F.quantize_fp8_activation(x, "token", scale_ub=ub)
    # rows with amax above the bound use ub/448 (and saturate); the rest are unaffected
    want = torch.minimum(amax, ub) / 448
    assert torch.allclose(s, want, rtol=1e-6, atol=0)
    capped = (amax > ub).squeeze(1)
    assert capped.any() and (~capped).any()
    assert (q[capped].float().abs().amax(1) == 448).all()
    assert not torch.isnan(q.float()).any()
    assert_within_half_ulp(x, q, s.expand_as(x))
    q0, s0 = F.quantize_fp8_activation(x, "token")
    assert torch.equal(s[~capped], s0[~capped]) and torch.equal(q[~capped].float(), q0[~capped].float())


def test_fp8_activation_zero_row_no_nan():
    x = _data(4, 128, 9)
    x[1] = 0
    for gran in ("token", "group"):
        q, s = F.quantize_fp8_activation(x, gran)
        assert not torch.isnan(q.float()).any() and (q[1].float() == 0).all() and (s > 0).all()


def test_fp8_activation_bad_granularity():
    with pytest.raises(ValueError, match="granularity"):
        F.quantize_fp8_activation(torch.randn(2, 4), "channel")
