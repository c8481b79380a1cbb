"""qlinear.formats.micro: NVFP4, MXFP4, MXFP8 quantize / dequantize, against the independent
numpy implementations of the OCP MX v1.0 spec and the NVFP4 convention in ``test_formats_spec.py``.

MXFP4 / MXFP8: element codes and E8M0 scale codes must be identical, and dequant(quant(x)) bit-exact
(every value is an element times a power of two, exact in float32).
NVFP4: element codes and E4M3 scale codes identical; the dequantized value e2m1 * s / gs involves a
true division, so float32 output is compared within 2**-23 relative (two fp32 roundings) and float64
output within 2**-51.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from qlinear import formats as F


import qlinear_tests_formats_spec as S  # noqa: E402 - the independent decoders (tests/conftest.py)


def _data(shape, seed, block=32, spread=(-30, 30)) -> torch.Tensor:
    """Random float32 with a different magnitude per block (exercises the scale range)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    nb = shape[-1] // block
    mag = torch.exp2(torch.randint(spread[0], spread[1], (*shape[:-1], nb), generator=g).float())
    x = (x.reshape(*shape[:-1], nb, block) * mag[..., None]).reshape(shape)
    x.view(-1, shape[-1])[0, :block] = 0  # an all-zero block
    return x


def _ties_block(elem: str) -> torch.Tensor:
    """A block whose scaled values are exactly the rounding midpoints (amax pins the scale to 2**3)."""
    if elem == "fp4":
        mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.5, 7.0]  # 6.5 / 7 saturate to 6
        top = 6.0
    else:
        mids = [1.0625, 1.1875, 3.0 * 2 ** -10, 2 ** -10, 9 * 2 ** -10, 464.0, 500.0, 300.0]
        top = 448.0
    v = torch.tensor(mids + [-m for m in mids], dtype=torch.float32)
    b = torch.zeros(32)
    b[0] = top
    b[1:1 + v.numel()] = v
    return b * 8.0


def _mx_inputs(elem):
    x = _data((6, 256), 1 if elem == "fp4" else 2)
    x[1, 32:64] = _ties_block(elem)
    x[2, 64:96] = torch.randn(32, generator=torch.Generator().manual_seed(7)) * 1e-30  # tiny block: scale near the E8M0 bottom
    x[3, 96:128] = torch.randn(32, generator=torch.Generator().manual_seed(8)) * 1e36  # huge block
    x[4, 128:160] = torch.randn(32, generator=torch.Generator().manual_seed(9)) * 1e-39  # fp32 subnormals: scale clamps to 2**-127
    return x


@pytest.mark.parametrize("elem", ["fp4", "fp8"])
def test_mx_quantize_matches_spec_bit_exact(elem):
    x = _mx_inputs(elem)
    want_codes, want_sc = S.mx_quantize(x.numpy(), elem)
    if elem == "fp4":
        packed, sc = F.quantize_mxfp4(x)
        assert packed.dtype == torch.uint8 and packed.shape == (6, 128)
        codes = S.unpack_nibbles(packed.numpy())
        deq = F.dequantize_mxfp4(packed, sc)
    else:
        q, sc = F.quantize_mxfp8(x)
        assert q.dtype == torch.float8_e4m3fn and q.shape == (6, 256)
        codes = q.view(torch.uint8).numpy()
        deq = F.dequantize_mxfp8(q, sc)
    assert sc.dtype == torch.uint8 and sc.shape == (6, 8)
    assert np.array_equal(sc.numpy(), want_sc)
    assert sc[0, 0] == 0 and sc[4, 4] == 0  # all-zero / subnormal block: smallest scale, 2**-127
    assert np.array_equal(codes, want_codes), int((codes != want_codes).sum())
    want = S.mx_dequantize(want_codes, want_sc, elem)
    assert deq.dtype == torch.float32
    assert np.array_equal(deq.numpy().astype(np.float64), want)  # bit-exact (sign of zero aside)
    assert np.array_equal(F.qdq(x, "mx" + elem).numpy(), deq.numpy())
    # 16-bit / float64 output dtypes where the values fit
    assert np.array_equal((F.dequantize_mxfp4(packed, sc, torch.float64) if elem == "fp4" else
                           F.dequantize_mxfp8(q, sc, torch.float64)).numpy(), want)


def test_mx_tie_block_values():
    x = _ties_block("fp4")
    packed, sc = F.quantize_mxfp4(x[None])
    assert sc.tolist() == [[127 + 3]]  # floor(log2(48)) - 2 = 3
    v = (F.dequantize_mxfp4(packed, sc)[0] / 8).tolist()
    assert v[1:10] == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0]  # ties to even, saturation at 6


@pytest.mark.parametrize("shape", [(2, 3, 64), (96,)])
def test_mx_leading_dims(shape):
    x = _data(shape, 3)
    p, sc = F.quantize_mxfp4(x)
    assert p.shape == (*shape[:-1], shape[-1] // 2) and sc.shape == (*shape[:-1], shape[-1] // 32)
    c, s = S.mx_quantize(x.numpy(), "fp4")
    assert np.array_equal(S.unpack_nibbles(p.numpy()), c) and np.array_equal(sc.numpy(), s)
    q8, sc8 = F.quantize_mxfp8(x)
    c8, s8 = S.mx_quantize(x.numpy(), "fp8")
    assert np.array_equal(q8.view(torch.uint8).numpy(), c8) and np.array_equal(sc8.numpy(), s8)


def test_mx_dequantize_all_codes_with_random_scales():
    # decode must be right for every code, not only those the quantizer produces
    g = torch.Generator().manual_seed(4)
    packed = torch.randint(0, 256, (4, 64), dtype=torch.uint8, generator=g)
    sc = torch.randint(0, 255, (4, 4), dtype=torch.uint8, generator=g)
    assert np.array_equal(F.dequantize_mxfp4(packed, sc, torch.float64).numpy(),
                          S.mx_dequantize(S.unpack_nibbles(packed.numpy()), sc.numpy(), "fp4"))
    q = torch.randint(0, 256, (4, 128), dtype=torch.uint8, generator=g)
    q[q == 0x7F] = 0x7E
    q[q == 0xFF] = 0xFE
    assert np.array_equal(F.dequantize_mxfp8(q.view(torch.float8_e4m3fn), sc, torch.float64).numpy(),
                          S.mx_dequantize(q.numpy(), sc.numpy(), "fp8"))


# ---- NVFP4 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given_gs", [False, True])
def test_nvfp4_matches_spec(given_gs):
    x = _data((8, 256), 5, block=16, spread=(-6, 6))
    gs_in = torch.tensor(448 * 6 / float(x.abs().max()) * 0.5) if given_gs else None  # a static gs: some saturate
    packed, s, gs = F.quantize_nvfp4(x, gs_in)
    assert packed.dtype == torch.uint8 and packed.shape == (8, 128)
    assert s.dtype == torch.float8_e4m3fn and s.shape == (8, 16)
    assert gs.dtype == torch.float32 and gs.shape == ()
    _, _, spec_gs = S.nvfp4_quantize(x.numpy(), None if gs_in is None else float(gs_in))
    # torch evaluates 2688 / amax as reciprocal(amax) * 2688 (as vLLM's code does too): within 1 fp32 ulp of
    # the correctly rounded quotient; the rest of the format is checked against the gs actually stored
    assert float(gs) == pytest.approx(float(spec_gs), rel=2.0 ** -23, abs=0)
    want_codes, want_sc, want_gs = S.nvfp4_quantize(x.numpy(), float(gs))
    assert np.array_equal(s.view(torch.uint8).numpy(), want_sc)
    codes = S.unpack_nibbles(packed.numpy())
    assert np.array_equal(codes, want_codes), int((codes != want_codes).sum())
    want = S.nvfp4_dequantize(want_codes, want_sc, want_gs)
    d32 = F.dequantize_nvfp4(packed, s, gs).numpy().astype(np.float64)
    assert np.allclose(d32, want, rtol=2.0 ** -23, atol=0)
    d64 = F.dequantize_nvfp4(packed, s, gs, torch.float64).numpy()
    assert np.allclose(d64, want, rtol=2.0 ** -51, atol=0)
    assert np.array_equal(F.qdq(x, "nvfp4", gs_in).numpy(), F.dequantize_nvfp4(packed, s, gs).numpy())
    # the global scale puts the tensor's amax at 448 * 6: the largest block scale is (near) 448
    if not given_gs:
        assert float(s.float().max()) == 448.0 and float(gs) == pytest.approx(2688 / float(x.abs().max()), rel=1e-6)


def test_nvfp4_global_scale():
    assert float(F.nvfp4_global_scale(2688.0)) == 1.0
    assert F.nvfp4_global_scale(torch.tensor(3.0)).shape == ()
    assert torch.isfinite(F.nvfp4_global_scale(0.0))  # amax 0 is clamped, no inf


def test_nvfp4_dequantize_random_codes():
    g = torch.Generator().manual_seed(6)
    packed = torch.randint(0, 256, (3, 32), dtype=torch.uint8, generator=g)
    sc = torch.randint(0, 0x7F, (3, 4), dtype=torch.uint8, generator=g)  # positive finite E4M3 scales
    gs = torch.tensor(37.5)
    want = S.nvfp4_dequantize(S.unpack_nibbles(packed.numpy()), sc.numpy(), 37.5)
    got = F.dequantize_nvfp4(packed, sc.view(torch.float8_e4m3fn), gs, torch.float64).numpy()
    assert np.allclose(got, want, rtol=2.0 ** -51, atol=0)
    got_raw = F.dequantize_nvfp4(packed, sc, gs, torch.float64).numpy()  # raw uint8 scale codes decode the same
    assert np.array_equal(got, got_raw)


# ---- bad inputs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,k", [(F.quantize_nvfp4, 40), (F.quantize_mxfp4, 48), (F.quantize_mxfp8, 80)])
def test_block_not_dividing_k_names_shape(fn, k):
    with pytest.raises(ValueError, match="shape"):
        fn(torch.randn(2, k))


def test_qdq_bad_format():
    with pytest.raises(ValueError, match="fmt"):
        F.qdq(torch.randn(2, 32), "mxfp6")
