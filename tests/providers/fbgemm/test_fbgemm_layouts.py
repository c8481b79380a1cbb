"""The weight transforms of the fbgemm provider, on CPU, against independent expectations."""

import pytest
import torch

from qlinear.formats import dequantize_wna16, quantize_wna16
from qlinear.formats.int_pack import unpack_along
from qlinear.scalar_type import scalar_types as st

from qlinear_fbgemm.int4_layout import (dequantize_fbgemm_int4, pack_int4_signed, to_fbgemm_int4,
                                        unpack_int4_signed)
from qlinear.formats.swizzle import swizzle_128x4, unswizzle_128x4


def test_pack_int4_signed_hand_built():
    q = torch.tensor([[-8, 7, 0, -1, 3, -4]])
    # element 2i low nibble, 2i+1 high nibble, two's complement nibbles
    expect = torch.tensor([[0x78, 0xF0, 0xC3]], dtype=torch.int32)
    got = pack_int4_signed(q).to(torch.int32) & 0xFF
    assert torch.equal(got, expect)
    assert torch.equal(unpack_int4_signed(pack_int4_signed(q)), q.to(torch.int32))


def test_uint4b8_conversion_equals_byte_xor_0x88():
    """Independent route: for GPTQ codes c, c - 8 as a 4-bit two's complement nibble is c ^ 8, and
    compressed-tensors' little-endian int32 words put code 2i in the low nibble of byte i."""
    g = torch.Generator().manual_seed(0)
    p = quantize_wna16(torch.randn(64, 256, generator=g), st.uint4b8, 128, False)
    wq, _, _ = to_fbgemm_int4(p["weight_packed"], p["weight_scale"])
    assert wq.shape == (64, 128) and wq.dtype == torch.int8
    xor = (p["weight_packed"].contiguous().view(torch.uint8) ^ 0x88).view(torch.int8)
    assert torch.equal(wq, xor)


@pytest.mark.parametrize("wt,zp,group", [(st.uint4b8, False, 128), (st.uint4b8, False, -1), (st.uint4, True, 128),
                                         (st.uint4, True, -1)])
def test_fbgemm_int4_dequantizes_to_the_reference(wt, zp, group):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(96, 512, generator=g) * 0.05
    p = quantize_wna16(w, wt, group, zp, scale_dtype=torch.bfloat16)
    zcodes = unpack_along(p["weight_zero_point"], 4, 0)[:96] if zp else None
    wq, s, z = to_fbgemm_int4(p["weight_packed"], p["weight_scale"], zcodes)
    ngroups = 1 if group == -1 else 512 // group
    assert s.shape == z.shape == (ngroups, 96) and s.is_contiguous() and z.is_contiguous()
    assert s.dtype == z.dtype == torch.float32
    ref = dequantize_wna16(wt, p["weight_packed"], p["weight_scale"], p.get("weight_zero_point"), None, group,
                           torch.float64)
    got = dequantize_fbgemm_int4(wq, s, z)
    assert torch.equal(got, ref)  # exact: bf16 scales x small integers are exact in fp32


def _offset(r, c, cols_padded):
    """Byte offset of scale (r, c) in CUTLASS's 128x4 layout, written from the layout's definition."""
    tile = (r // 128) * (cols_padded // 4) + c // 4
    return tile * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + (c % 4)


@pytest.mark.parametrize("rows,cols", [(128, 4), (256, 8), (130, 5), (1, 1), (300, 34)])
def test_swizzle_128x4_matches_the_index_formula(rows, cols):
    s = torch.randint(1, 255, (rows, cols), dtype=torch.uint8)
    sw = swizzle_128x4(s)
    rp, cp = -(-rows // 128) * 128, -(-cols // 4) * 4
    assert sw.shape == (rp, cp)
    flat = sw.reshape(-1)
    for r in range(rows):
        for c in range(cols):
            assert flat[_offset(r, c, cp)] == s[r, c]
    assert int(flat.to(torch.int64).sum()) == int(s.to(torch.int64).sum())  # padding is zeros
    assert torch.equal(unswizzle_128x4(sw, rows, cols), s)


def test_swizzle_keeps_fp8_dtype():
    s = (torch.rand(130, 32) * 10).to(torch.float8_e4m3fn)
    sw = swizzle_128x4(s)
    assert sw.dtype == torch.float8_e4m3fn
    assert torch.equal(unswizzle_128x4(sw, 130, 32).view(torch.uint8), s.view(torch.uint8))
