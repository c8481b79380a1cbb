"""Independent decoders / encoders, written from the format specifications, with no qlinear code.

The other ``test_formats_*`` files and ``test_emulation.py`` judge ``qlinear.formats`` (the numeric
reference every provider is tested against) and the emulation provider by these functions, so a
bug in the reference cannot hide by being shared with its own test. Everything here is float64
numpy or pure Python:

* element codes: E2M1 (OCP MX v1.0 FP4), E4M3 "fn" (OCP FP8, no infinities, S.1111.111 is NaN),
  E8M0 (OCP MX scale: 2**(code - 127), 0xFF is NaN) decoded bit by bit from the definitions;
* encoders: round to nearest, ties to even, saturating to the largest finite value (OCP MX
  conversion with saturation), done in float64 by ``rint`` on the value's own ulp grid;
* the block formats: MXFP4 / MXFP8 (shared scale ``2**(floor(log2(amax)) - emax_elem)``, OCP MX
  v1.0 section 6.3) and NVFP4 (vLLM / compressed-tensors convention: global scale
  ``gs = 448 * 6 / amax``, block scale ``e4m3(amax_block / 6 * gs)``, value ``e2m1 * s / gs``);
* the compressed-tensors wNa16 integer layout (codes packed LSB-first into int32 words).

Why not ml_dtypes for the float64 encoders: ml_dtypes (0.5/0.6) converts float64 to the small float
types through float32, i.e. it rounds twice (0.25 + 1e-12 -> float32 0.25 -> tie -> 0, but the
nearest E2M1 value is 0.5). It is exact from float32, so it is used there as a second, external
witness, and the tests in this file check the float64 encoders against it on float32 inputs.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

E2M1_MAX = 6.0
E4M3_MAX = 448.0
MX_BLOCK = 32
NVFP4_BLOCK = 16
MX_EMAX = {"fp4": 2, "fp8": 8}  # exponent of the largest normal: 6 = 1.5 * 2**2, 448 = 1.75 * 2**8


# ---- element codes, bit by bit ------------------------------------------------------------------
def e2m1_value(code: int) -> float:
    """E2M1: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0; exponent 0 is subnormal."""
    e, m = (code >> 1) & 0b11, code & 1
    mag = m * 0.5 if e == 0 else 2.0 ** (e - 1) * (1 + m / 2)
    return math.copysign(mag, -1.0 if code & 0b1000 else 1.0)


def e4m3_value(code: int) -> float:
    """E4M3FN: sign bit 7, exponent bits 6..3 (bias 7), mantissa bits 2..0; only S.1111.111 is NaN."""
    e, m = (code >> 3) & 0xF, code & 0x7
    if e == 0xF and m == 0x7:
        return float("nan")
    mag = (m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
    return math.copysign(mag, -1.0 if code & 0x80 else 1.0)


def e8m0_value(code: int) -> float:
    """E8M0: 8 exponent bits, bias 127, no sign, no mantissa; 0xFF is NaN, 0x00 is 2**-127."""
    return float("nan") if code == 0xFF else math.ldexp(1.0, code - 127)


E2M1_TABLE = np.array([e2m1_value(c) for c in range(16)], dtype=np.float64)
E4M3_TABLE = np.array([e4m3_value(c) for c in range(256)], dtype=np.float64)
E8M0_TABLE = np.array([e8m0_value(c) for c in range(256)], dtype=np.float64)
_E2M1_MAGS = E2M1_TABLE[:8]  # 0, 0.5, 1, 1.5, 2, 3, 4, 6


def floor_log2(a: np.ndarray) -> np.ndarray:
    """floor(log2(a)) for a > 0, exactly (float64 frexp: a = m * 2**ex with m in [0.5, 1))."""
    return np.frexp(np.asarray(a, dtype=np.float64))[1].astype(np.int64) - 1


def round_to_grid(v: np.ndarray, mbits: int, emin: int, maxval: float) -> np.ndarray:
    """Round float64 ``v`` to a float format with ``mbits`` mantissa bits and smallest normal exponent
    ``emin``: nearest value, ties to even mantissa, saturating to ``maxval`` (sign kept, -0 kept)."""
    v = np.asarray(v, dtype=np.float64)
    a = np.abs(v)
    e = np.maximum(np.where(a > 0, floor_log2(np.where(a > 0, a, 1.0)), emin), emin)
    ulp = np.ldexp(1.0, e - mbits)  # the grid spacing in a's binade (the subnormal spacing below emin)
    q = np.minimum(np.rint(a / ulp) * ulp, maxval)  # rint is ties-to-even; the quotient is exact
    return np.copysign(q, v)


def e2m1_round(v):
    return round_to_grid(v, 1, 0, E2M1_MAX)


def e4m3_round(v):
    return round_to_grid(v, 3, -6, E4M3_MAX)


def e2m1_codes_of(q: np.ndarray) -> np.ndarray:
    """Representable E2M1 values (incl. -0) -> codes."""
    q = np.asarray(q, dtype=np.float64)
    mag = np.searchsorted(_E2M1_MAGS, np.abs(q))
    assert np.array_equal(_E2M1_MAGS[mag], np.abs(q)), "not an E2M1 value"
    return (mag + 8 * np.signbit(q)).astype(np.uint8)


def e4m3_codes_of(q: np.ndarray) -> np.ndarray:
    """Representable E4M3 values -> codes (float32 -> e4m3 is exact for them)."""
    return np.asarray(q, dtype=np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)


# ---- compressed-tensors integer packing -----------------------------------------------------------
def unpack_words(words: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """int32 words -> unsigned codes; code j of a word sits at bits [j*bits, (j+1)*bits)."""
    pf = 32 // bits
    w = np.moveaxis(np.asarray(words).astype(np.int64) & 0xFFFFFFFF, axis, -1)
    c = np.stack([(w >> (bits * j)) & ((1 << bits) - 1) for j in range(pf)], axis=-1)
    return np.moveaxis(c.reshape(*w.shape[:-1], w.shape[-1] * pf), -1, axis)


def wna16_dequant(bits: int, bias: int, packed, scale, zp_packed=None, g_idx=None, group_size=-1) -> np.ndarray:
    """compressed-tensors wNa16 -> float64 [N, K]: (code - zp or bias) * scale[n, group(k)]."""
    codes = unpack_words(packed, bits, 1)
    n, k = codes.shape
    gi = np.asarray(g_idx, dtype=np.int64) if g_idx is not None else np.arange(k) // (k if group_size == -1 else group_size)
    s = np.asarray(scale, dtype=np.float64)[:, gi]
    if zp_packed is not None:
        z = unpack_words(zp_packed, bits, 0)[:n][:, gi]
    else:
        z = bias
    return (codes - z) * s


def w4a8_dequant(packed, scale_codes: np.ndarray, chan, group_size: int) -> np.ndarray:
    """W4A8 -> float64 [N, K]: e4m3(q * s_g) * s_ch, q = code - 8 (uint4b8 packed along K), s_g an
    E4M3 group scale (given as its byte codes), the product rounded to E4M3 (the FP8 MMA's operand)."""
    q = unpack_words(packed, 4, 1) - 8
    n, k = q.shape
    s = E4M3_TABLE[np.asarray(scale_codes, dtype=np.int64)][:, np.arange(k) // (k if group_size == -1 else group_size)]
    return e4m3_round(q * s) * np.asarray(chan, dtype=np.float64).reshape(n, 1)


# ---- block formats ----------------------------------------------------------------------------------
def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    return x.reshape(*x.shape[:-1], x.shape[-1] // block, block)


def mx_quantize(x: np.ndarray, elem: str):
    """OCP MX v1.0: x [..., K] float -> (element codes uint8 [..., K], E8M0 codes uint8 [..., K/32]).
    An all-zero block gets the smallest scale (2**-127): log2(0) is -inf, clamped to the range."""
    b = _blocks(np.asarray(x, dtype=np.float64), MX_BLOCK)
    amax = np.abs(b).max(-1)
    e = np.where(amax > 0, floor_log2(np.where(amax > 0, amax, 1.0)), -127) - MX_EMAX[elem]
    e = np.clip(e, -127, 127)
    v = b / np.ldexp(1.0, e)[..., None]  # power-of-two scale: exact
    if elem == "fp4":
        codes = e2m1_codes_of(e2m1_round(v))
    else:
        codes = e4m3_codes_of(e4m3_round(v))
    return codes.reshape(np.shape(x)), (e + 127).astype(np.uint8)


def mx_dequantize(codes: np.ndarray, scodes: np.ndarray, elem: str) -> np.ndarray:
    table = E2M1_TABLE if elem == "fp4" else E4M3_TABLE
    v = _blocks(table[np.asarray(codes, dtype=np.int64)], MX_BLOCK)
    return (v * E8M0_TABLE[np.asarray(scodes, dtype=np.int64)][..., None]).reshape(np.shape(codes))


def nvfp4_global_scale(amax: float) -> np.float32:
    """Stored as fp32 (as the checkpoint holds it)."""
    return np.float32(E4M3_MAX * E2M1_MAX / float(amax))


def nvfp4_quantize(x: np.ndarray, gs=None):
    """x [..., K] -> (E2M1 codes [..., K], E4M3 scale codes [..., K/16], fp32 global scale)."""
    x64 = np.asarray(x, dtype=np.float64)
    gs = nvfp4_global_scale(np.abs(x64).max()) if gs is None else np.float32(gs)
    g = float(gs)
    b = _blocks(x64, NVFP4_BLOCK)
    s = e4m3_round(np.abs(b).max(-1) / E2M1_MAX * g)
    v = np.where(s[..., None] > 0, b * g / np.where(s > 0, s, 1.0)[..., None], 0.0)
    return e2m1_codes_of(e2m1_round(v)).reshape(x64.shape), e4m3_codes_of(s), gs


def nvfp4_dequantize(codes: np.ndarray, scodes: np.ndarray, gs) -> np.ndarray:
    v = _blocks(E2M1_TABLE[np.asarray(codes, dtype=np.int64)], NVFP4_BLOCK)
    s = E4M3_TABLE[np.asarray(scodes, dtype=np.int64)] / float(gs)
    return (v * s[..., None]).reshape(np.shape(codes))


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """[..., K/2] bytes -> [..., K] codes: element 2i is the low nibble, 2i+1 the high nibble."""
    p = np.asarray(packed).astype(np.uint8)
    return np.stack([p & 0xF, p >> 4], axis=-1).reshape(*p.shape[:-1], p.shape[-1] * 2)


# ---- activation quantization (the per-family conventions, qlinear.families) -----------
def int8_act_qdq(x: np.ndarray, symmetric: bool, scale=None, zp=None) -> np.ndarray:
    """INT8: x ≈ (q - zp) * s. Dynamic: per token, s = amax/127 (sym) or (max-min)/255 with the range
    widened to hold 0 and zp = round(-128 - min/s) (asym). Static: the given per-tensor s, zp."""
    x = np.asarray(x, dtype=np.float64)
    if scale is not None:
        s = float(scale)
        z = 0.0 if symmetric else float(zp)
    elif symmetric:
        s, z = np.abs(x).max(-1, keepdims=True) / 127.0, 0.0
    else:
        lo, hi = np.minimum(x.min(-1, keepdims=True), 0), np.maximum(x.max(-1, keepdims=True), 0)
        s = (hi - lo) / 255.0
        z = np.clip(np.rint(-128 - lo / s), -128, 127)
    q = np.clip(np.rint(x / s) + z, -128, 127)
    return (q - z) * s


def fp8_act_qdq(x: np.ndarray, granularity: str, scale=None, group: int = 128) -> np.ndarray:
    """FP8 E4M3: s = amax/448 per tensor / token / 1 x group (dynamic), or the given static s."""
    x = np.asarray(x, dtype=np.float64)
    if granularity == "static":
        s = float(scale)
    elif granularity == "tensor":
        s = np.abs(x).max() / E4M3_MAX
    elif granularity == "token":
        s = np.abs(x).max(-1, keepdims=True) / E4M3_MAX
    elif granularity == "group":
        m, k = x.shape
        s = np.empty_like(x)
        for j in range(0, k, group):
            s[:, j:j + group] = np.abs(x[:, j:j + group]).max(-1, keepdims=True) / E4M3_MAX
    else:
        raise AssertionError(granularity)
    return e4m3_round(x / s) * s


# ==== tests of the independent code itself ==========================================================
def test_e2m1_table_is_the_ocp_table():
    # OCP MX v1.0 table 5 (FP4 E2M1): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives
    assert list(E2M1_TABLE[:8]) == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert list(E2M1_TABLE[8:]) == [-0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
    assert np.signbit(E2M1_TABLE[8])


def test_e4m3_table_landmarks():
    assert E4M3_TABLE[0x7E] == 448.0 and E4M3_TABLE[0xFE] == -448.0  # largest finite
    assert np.isnan(E4M3_TABLE[0x7F]) and np.isnan(E4M3_TABLE[0xFF])
    assert E4M3_TABLE[0x01] == 2.0 ** -9 and E4M3_TABLE[0x08] == 2.0 ** -6  # smallest subnormal / normal
    assert E4M3_TABLE[0x38] == 1.0 and E4M3_TABLE[0x78] == 256.0
    assert int(np.isnan(E4M3_TABLE).sum()) == 2


def test_e8m0_table_landmarks():
    assert E8M0_TABLE[127] == 1.0 and E8M0_TABLE[0] == 2.0 ** -127 and E8M0_TABLE[254] == 2.0 ** 127
    assert np.isnan(E8M0_TABLE[255])


def test_independent_tables_agree_with_ml_dtypes():
    codes = np.arange(256, dtype=np.uint8)
    f4 = (codes[:16]).view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    assert np.array_equal(f4, E2M1_TABLE) and np.array_equal(np.signbit(f4), np.signbit(E2M1_TABLE))
    f8 = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    assert np.array_equal(f8, E4M3_TABLE, equal_nan=True)
    e8 = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    assert np.array_equal(e8, E8M0_TABLE, equal_nan=True)


def test_float64_encoders_agree_with_ml_dtypes_on_float32_inputs():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * np.exp2(rng.integers(-12, 10, 200_000))).astype(np.float32)
    # E2M1: ml_dtypes saturates (7 -> 6, 1e6 -> 6, inf -> 6); ours too
    ref = x.astype(ml_dtypes.float4_e2m1fn).astype(np.float64)
    assert np.array_equal(e2m1_round(x), ref)
    # E4M3: ml_dtypes gives NaN above 464, so compare on clipped inputs (saturation is tested apart)
    xc = np.clip(x, -E4M3_MAX, E4M3_MAX)
    assert np.array_equal(e4m3_round(xc), xc.astype(ml_dtypes.float8_e4m3fn).astype(np.float64))
    assert e4m3_round(np.array([1e6, -1e6, 464.0, 470.0])).tolist() == [448.0, -448.0, 448.0, 448.0]


def test_float64_encoders_round_once():
    # the reason ml_dtypes is not used on float64: it rounds via float32 (documented above)
    assert e2m1_round(np.array([0.25 + 1e-12, 2.5 + 1e-10, 5 - 1e-12])).tolist() == [0.5, 3.0, 4.0]
    assert e4m3_round(np.array([1.0625 + 1e-12, 1.0625, 1.1875])).tolist() == [1.125, 1.0, 1.25]


def test_unpack_words_hand_built():
    w = np.array([[np.int32(np.uint32(0x87654321).view(np.int32))]])
    assert unpack_words(w, 4, 1).tolist() == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert unpack_words(w, 8, 0)[:, 0].tolist() == [0x21, 0x43, 0x65, 0x87]


def test_mx_spec_hand_example():
    # a block with amax 5.0: floor(log2 5) = 2, scale 2**(2-2) = 1 -> elements rounded on the E2M1 grid
    x = np.zeros(32)
    x[:5] = [5.0, -0.3, 0.75, 2.6, -5.5]
    codes, sc = mx_quantize(x, "fp4")
    assert sc.tolist() == [127]
    assert mx_dequantize(codes, sc, "fp4")[:5].tolist() == [4.0, -0.5, 1.0, 3.0, -6.0]
    _, sc8 = mx_quantize(x, "fp8")
    assert sc8.tolist() == [127 + 2 - 8]


@pytest.mark.parametrize("x", [np.array([[1.0] * 16]), np.array([[0.0] * 15 + [3.0]])])
def test_nvfp4_spec_hand_example(x):
    codes, sc, gs = nvfp4_quantize(x)
    assert np.allclose(nvfp4_dequantize(codes, sc, gs), x, rtol=0, atol=1e-6)
