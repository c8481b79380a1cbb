"""qlinear.formats.codes: E2M1 / E4M3 / E8M0 element codes, floor_log2, FP4 nibble packing.

Judged against ml_dtypes (an external implementation), torch's own float8_e8m0fnu, and the
bit-level decoders of ``test_formats_spec.py``. Decoding must be exact over all codes.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

from qlinear import formats as F


import qlinear_tests_formats_spec as S  # noqa: E402 - the independent decoders (tests/conftest.py)
ALL8 = torch.arange(256, dtype=torch.uint8)
ALL4 = torch.arange(16, dtype=torch.uint8)


def _bits32(t: torch.Tensor) -> np.ndarray:
    return t.float().numpy().view(np.uint32)


# ---- E2M1 -------------------------------------------------------------------------------------------
def test_e2m1_decode_all_codes_bit_exact_vs_ml_dtypes():
    got = F.e2m1_decode(ALL4).numpy()
    want = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit-exact: -0 at code 8 included
    assert np.array_equal(got.astype(np.float64), S.E2M1_TABLE)
    # the other output dtypes are exact too (every E2M1 value fits a 16-bit float)
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        v = F.e2m1_decode(ALL4, dt)
        assert v.dtype == dt and np.array_equal(v.double().numpy(), S.E2M1_TABLE)
        assert torch.signbit(v[8])
    assert tuple(F.E2M1_VALUES) == tuple(S.E2M1_TABLE.tolist()) and F.FP4_MAX == 6.0


def test_e2m1_decode_ignores_high_bits():
    assert torch.equal(F.e2m1_decode(ALL8), F.e2m1_decode(ALL4).repeat(16))


def test_e2m1_encode_decode_round_trip_all_codes():
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        assert torch.equal(F.e2m1_encode(F.e2m1_decode(ALL4, dt)), ALL4), dt  # -0 must come back as code 8


def _ml_e2m1_codes(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0xF


def test_e2m1_encode_ties_go_to_even():
    # each midpoint between neighbouring magnitudes, both signs: the even code wins
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], dtype=np.float32)
    want_mag = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]  # codes 0, 2, 2, 4, 4, 6, 6
    x = np.concatenate([mids, -mids])
    got = F.e2m1_encode(torch.from_numpy(x)).numpy()
    assert np.array_equal(got, _ml_e2m1_codes(x))
    assert np.array_equal(S.E2M1_TABLE[got], np.concatenate([want_mag, -np.array(want_mag)]))
    # one float32 ulp either side of each tie goes to the nearer value
    for d in (-1, 1):
        xn = np.nextafter(x, x + d * np.abs(x), dtype=np.float32)
        assert np.array_equal(F.e2m1_encode(torch.from_numpy(xn)).numpy(), _ml_e2m1_codes(xn)), d
        assert np.array_equal(S.E2M1_TABLE[F.e2m1_encode(torch.from_numpy(xn)).numpy()], S.e2m1_round(xn))


def test_e2m1_encode_random_vs_ml_dtypes_and_spec():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(100_000) * np.exp2(rng.integers(-4, 4, 100_000))).astype(np.float32)
    x[:16] = [0.0, -0.0, 6.0, -6.0, 6.5, 7.0, -7.0, 1e6, -1e30, np.inf, -np.inf, 1e-40, -1e-40, 0.1, -0.1, 5.999]
    got = F.e2m1_encode(torch.from_numpy(x)).numpy()
    # ml_dtypes saturates to +-6 beyond the range (7, 1e6, inf -> 6): so does qlinear (OCP saturating cast)
    assert np.array_equal(got, _ml_e2m1_codes(x))
    assert np.array_equal(S.E2M1_TABLE[got], S.e2m1_round(x))
    assert got[5] == 7 and got[6] == 15 and got[9] == 7 and got[10] == 15
    assert got[1] == 8 and got[12] == 8 and got[14] == 8  # -0 and tiny negatives keep the sign


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_e2m1_encode_16bit_inputs(dt):
    x = (torch.randn(20_000, generator=torch.Generator().manual_seed(2)) * 3).to(dt)
    got = F.e2m1_encode(x).numpy()
    assert np.array_equal(S.E2M1_TABLE[got], S.e2m1_round(x.double().numpy()))


def test_e2m1_encode_float64_rounds_once():
    x = torch.tensor([0.25 + 1e-12, 2.5 + 1e-10, 5.0 - 1e-12], dtype=torch.float64)
    assert S.E2M1_TABLE[F.e2m1_encode(x).numpy()].tolist() == [0.5, 3.0, 4.0]


# ---- E4M3 -------------------------------------------------------------------------------------------
def test_e4m3_decode_all_codes_vs_ml_dtypes_and_spec():
    want = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    for src in (ALL8, ALL8.view(torch.float8_e4m3fn)):  # raw codes and the torch dtype
        got = F.e4m3_decode(src).numpy()
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan) and nan.sum() == 2  # 0x7F and 0xFF only
        assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # bit-exact (-0 included)
        assert np.array_equal(got.astype(np.float64), S.E4M3_TABLE, equal_nan=True)
    for dt in (torch.float64, torch.bfloat16, torch.float16):  # every E4M3 value fits these exactly
        assert np.array_equal(F.e4m3_decode(ALL8, dt).double().numpy(), S.E4M3_TABLE, equal_nan=True)
    assert F.FP8 == torch.float8_e4m3fn and F.FP8_MAX == 448.0


def test_to_e4m3_rounds_like_ml_dtypes_and_saturates():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(100_000) * np.exp2(rng.integers(-14, 9, 100_000))).astype(np.float32)
    xc = np.clip(x, -448, 448)
    got = F.to_e4m3(torch.from_numpy(xc)).view(torch.uint8).numpy()
    assert np.array_equal(got, xc.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
    got_all = F.to_e4m3(torch.from_numpy(x)).float().numpy()
    assert not np.isnan(got_all).any()
    assert np.array_equal(got_all.astype(np.float64), S.e4m3_round(x))
    # saturation: the plain cast gives NaN above 464; to_e4m3 must not
    big = torch.tensor([1e6, -1e6, 464.0, 465.0, 480.0, float("inf"), -float("inf")])
    assert F.to_e4m3(big).float().tolist() == [448.0, -448.0, 448.0, 448.0, 448.0, 448.0, -448.0]


def test_e4m3_round_trip_all_finite_codes():
    finite = ALL8[~torch.isnan(F.e4m3_decode(ALL8))]
    assert torch.equal(F.to_e4m3(F.e4m3_decode(finite)).view(torch.uint8), finite)


# ---- E8M0 -------------------------------------------------------------------------------------------
def test_e8m0_decode_all_codes():
    got = F.e8m0_decode(ALL8)
    assert got.dtype == torch.float32
    g = got.numpy()
    want = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    assert np.isnan(g[255]) and not np.isnan(g[:255]).any()
    assert np.array_equal(g[:255].view(np.uint32), want[:255].view(np.uint32))
    assert np.array_equal(g.astype(np.float64), S.E8M0_TABLE, equal_nan=True)
    assert g[0] == 2.0 ** -127 and g[0] > 0  # an fp32 subnormal: must not be flushed to 0
    assert [float(v) for v in g[[1, 126, 127, 128, 254]]] == [2.0 ** -126, 0.5, 1.0, 2.0, 2.0 ** 127]


@pytest.mark.skipif(not hasattr(torch, "float8_e8m0fnu"), reason="this torch has no float8_e8m0fnu")
def test_e8m0_decode_vs_torch_dtype():
    want = ALL8.view(torch.float8_e8m0fnu).float()
    got = F.e8m0_decode(ALL8)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    ok = ~torch.isnan(want)
    assert torch.equal(got[ok].view(torch.int32), want[ok].view(torch.int32))


def test_e8m0_round_trip_all_finite_codes():
    # decode -> exponent -> code gives every finite code back (code 0 goes through an fp32 subnormal)
    finite = ALL8[:255]
    assert torch.equal(F.e8m0_from_exponent(F.floor_log2(F.e8m0_decode(finite))), finite)


def test_e8m0_from_exponent_clamps():
    e = torch.tensor([-300, -128, -127, -1, 0, 1, 127, 128, 500])
    assert F.e8m0_from_exponent(e).tolist() == [0, 0, 0, 126, 127, 128, 254, 254, 254]
    r = torch.arange(-127, 128)
    assert torch.equal(F.e8m0_decode(F.e8m0_from_exponent(r)).double(), torch.exp2(r.double()))


# ---- floor_log2 ---------------------------------------------------------------------------------------
def _frexp_floor_log2(v: float) -> int:
    return math.frexp(v)[1] - 1


def test_floor_log2_powers_of_two_and_neighbours():
    e = torch.arange(-149, 128)
    p = torch.exp2(e.double()).float()  # every fp32 power of two, subnormals included
    assert torch.equal(F.floor_log2(p), e.int())
    below = torch.nextafter(p, torch.zeros_like(p))[1:]  # just under 2**e: floor is e - 1
    assert F.floor_log2(below).tolist() == [_frexp_floor_log2(float(v)) for v in below] == (e[1:] - 1).tolist()
    above = torch.nextafter(p, torch.full_like(p, math.inf))[:-1]
    assert F.floor_log2(above).tolist() == [_frexp_floor_log2(float(v)) for v in above]
    normal = e[:-1] >= -126  # for normals the next float up is still in 2**e's binade (not so for 2**-149)
    assert torch.equal(F.floor_log2(above)[normal], e[:-1][normal].int())


def test_floor_log2_subnormals_and_random():
    rng = np.random.default_rng(4)
    sub = rng.integers(1, 1 << 23, 5000, dtype=np.int64).astype(np.uint32).view(np.float32)  # every subnormal pattern range
    ran = (np.abs(rng.standard_normal(20000)) * np.exp2(rng.integers(-120, 120, 20000))).astype(np.float32)
    big = np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1.0, 3.0, 0.75], dtype=np.float32)
    for x in (sub, ran, big):
        got = F.floor_log2(torch.from_numpy(x)).tolist()
        assert got == [_frexp_floor_log2(float(v)) for v in x]
    assert F.floor_log2(torch.tensor([0.0])).tolist() == [-127]  # documented: 0 maps to -127
    assert F.floor_log2(-torch.tensor([3.0, 0.25])).tolist() == [1, -2]  # reads |x|'s exponent


def test_floor_log2_float64_exact():
    x = torch.tensor([1.0 - 1e-12, 2.0 ** 20 - 1e-9], dtype=torch.float64)
    assert F.floor_log2(x).tolist() == [-1, 19]


# ---- FP4 nibble packing ---------------------------------------------------------------------------------
def test_pack_fp4_hand_built_nibble_order():
    codes = torch.tensor([[0x1, 0x2, 0xF, 0x0, 0x7, 0x8]], dtype=torch.uint8)
    packed = F.pack_fp4(codes)
    assert packed.dtype == torch.uint8 and packed.tolist() == [[0x21, 0x0F, 0x87]]  # element 2i in the low nibble
    assert torch.equal(F.unpack_fp4(packed), codes)
    assert np.array_equal(S.unpack_nibbles(packed.numpy()), codes.numpy())


def test_pack_fp4_round_trip_random():
    c = torch.randint(0, 16, (3, 5, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    p = F.pack_fp4(c)
    assert p.shape == (3, 5, 32)
    assert torch.equal(F.unpack_fp4(p), c)
    assert np.array_equal(S.unpack_nibbles(p.numpy()), c.numpy())
    b = torch.randint(0, 256, (4, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(F.pack_fp4(F.unpack_fp4(b)), b)


def test_pack_fp4_odd_length_names_field():
    with pytest.raises(ValueError, match="codes.shape"):
        F.pack_fp4(torch.zeros(2, 7, dtype=torch.uint8))
