"""FlashInfer weight transforms (pure torch) against hand-built layouts and independent inverses."""

import pytest
import torch

from qlinear.formats import dequantize_nvfp4, quantize_nvfp4
from qlinear.formats.codes import e2m1_decode, unpack_fp4

from qlinear_flashinfer import layouts as L


def _offset(r, c, cols_padded):
    """Byte offset of scale (r, c) in the 128x4 layout, from its definition (TRT-LLM computeSFIndex)."""
    return ((r // 128) * (cols_padded // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4


@pytest.mark.parametrize("rows,cols", [(128, 4), (256, 12), (130, 5), (1, 1), (33, 64)])
def test_swizzle_128x4_index_formula_and_inverse(rows, cols):
    s = torch.randint(1, 255, (rows, cols), dtype=torch.uint8)
    sw = L.swizzle_128x4(s)
    rp, cp = L.round_up(rows, 128), L.round_up(cols, 4)
    assert sw.shape == (rp, cp)
    flat = sw.reshape(-1)
    idx = torch.tensor([_offset(r, c, cp) for r in range(rows) for c in range(cols)])
    assert torch.equal(flat[idx], s.reshape(-1))
    mask = torch.ones(rp * cp, dtype=torch.bool)
    mask[idx] = False
    assert (flat[mask] == 0).all()  # padding is zero
    assert torch.equal(L.unswizzle_128x4(sw, rows, cols), s)


def test_swizzle_first_tile_hand_built():
    """In the first 128x4 tile, byte b holds (row (b // 16) + 32 * ((b // 4) % 4), col b % 4)."""
    s = torch.arange(128 * 4, dtype=torch.int32).reshape(128, 4)  # value = 4 * row + col
    flat = L.swizzle_128x4(s).reshape(-1)
    expect = [4 * ((b // 16) + 32 * ((b // 4) % 4)) + b % 4 for b in range(512)]
    assert flat.tolist() == expect


def test_swizzle_keeps_e4m3_and_mx_flat():
    s = (torch.rand(300, 32) * 100).to(torch.float8_e4m3fn)
    sw = L.swizzle_128x4(s)
    assert sw.dtype == torch.float8_e4m3fn and sw.shape == (384, 32)
    assert torch.equal(L.unswizzle_128x4(sw, 300, 32).view(torch.uint8), s.view(torch.uint8))
    e8 = torch.randint(100, 140, (130, 16), dtype=torch.uint8)
    flat = L.swizzle_mx_scale_flat(e8)
    assert flat.shape == (256 * 16,) and torch.equal(L.unswizzle_128x4(flat.reshape(256, 16), 130, 16), e8)


def test_pad_nvfp4_weight_and_slice():
    w = torch.randint(0, 255, (300, 40), dtype=torch.uint8)  # N=300, K=80
    p, pad_k = L.pad_nvfp4_weight(w)
    assert p.shape == (320, 64) and pad_k == 128 - 80
    assert torch.equal(p[:300, :40], w) and (p[300:] == 0).all() and (p[:, 40:] == 0).all()
    same, zero = L.pad_nvfp4_weight(torch.zeros(64, 32, dtype=torch.uint8))
    assert same.shape == (64, 32) and zero == 0
    out = torch.randn(7, 320)
    assert torch.equal(L.slice_output(out, 300), out[:, :300])
    assert L.slice_output(torch.randn(128, 320), 300, 7).shape == (7, 300)


def test_padded_nvfp4_weight_computes_the_same_product():
    """Zero codes with zero scales in the padding leave x @ W^T unchanged on the real rows."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 48, generator=g)
    q, s, gs = quantize_nvfp4(w)
    qp, pad_k = L.pad_nvfp4_weight(q)
    sp = torch.zeros(qp.shape[0], qp.shape[1] * 2 // 16, dtype=torch.uint8)
    sp[:40, :3] = s.view(torch.uint8)
    wp = dequantize_nvfp4(qp, sp.view(torch.float8_e4m3fn), gs)
    x = torch.randn(3, 48, generator=g)
    xp = L.pad_cols(x, 48 + pad_k)
    assert torch.allclose((xp @ wp.t())[:, :40], x @ dequantize_nvfp4(q, s, gs).t(), atol=1e-5)


def test_shuffle_matrix_a_hand_built():
    t = torch.arange(64).reshape(64, 1)
    sh = L.shuffle_matrix_a(t, 128)  # blocks of 32: original row i -> row map[i], map = 0,8,16,24,1,9,...
    assert sh[:8, 0].tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert sh[8:12, 0].tolist() == [1, 5, 9, 13]
    assert sh[32:36, 0].tolist() == [32, 36, 40, 44]
    sh16 = L.shuffle_matrix_a(torch.arange(16).reshape(16, 1), 64)  # 16-row blocks: 0,8,1,9,...
    assert sh16[:, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15]
    x = torch.randn(256, 3)
    assert torch.equal(L.unshuffle_matrix_a(L.shuffle_matrix_a(x)), x)
    with pytest.raises(ValueError, match="multiple of 32"):
        L.shuffle_matrix_a(torch.zeros(48, 2))


def test_shuffle_matrix_sf_a_is_row_shuffle_then_interleave():
    s = torch.randint(0, 255, (256, 8), dtype=torch.uint8)
    got = L.shuffle_matrix_sf_a(s, 128)
    assert got.shape == (256, 8)
    back = L.unshuffle_matrix_a(L.unswizzle_128x4(got, 256, 8))  # the inverse steps, in reverse order
    assert torch.equal(back, s)
    with pytest.raises(ValueError, match="multiple of 128"):
        L.shuffle_matrix_sf_a(torch.zeros(130, 8, dtype=torch.uint8))


def test_fp4_packing_is_low_nibble_first():
    """The packed FP4 layout the GEMMs read: element 2i in the low nibble (e2m1 code 2 = 1.0, 0xC = -2.0)."""
    vals = e2m1_decode(unpack_fp4(torch.tensor([[0xC2]], dtype=torch.uint8)))
    assert vals.tolist() == [[1.0, -2.0]]
