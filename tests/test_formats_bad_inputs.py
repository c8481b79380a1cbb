"""Bad inputs to the decode side of qlinear.formats: a wrong-shaped parameter must raise a
ValueError naming the field, never broadcast into a silently wrong weight.

The shape checks the encode side has are tested in the other test_formats files.
"""

from __future__ import annotations

import pytest
import torch

from qlinear import formats as F
from qlinear.scalar_type import scalar_types


# ---- silent broadcasting of a wrong scale shape (wrong numbers, no error) --------------------------------
def test_dequantize_mxfp4_wrong_scale_shape():
    packed, sc = F.quantize_mxfp4(torch.randn(4, 64))
    with pytest.raises(ValueError, match="scale.shape"):
        F.dequantize_mxfp4(packed, sc[:, :1])


def test_dequantize_mxfp8_wrong_scale_shape():
    q, sc = F.quantize_mxfp8(torch.randn(4, 64))
    with pytest.raises(ValueError, match="scale.shape"):
        F.dequantize_mxfp8(q, sc[:, :1])


def test_dequantize_nvfp4_wrong_scale_shape():
    packed, s, gs = F.quantize_nvfp4(torch.randn(4, 64))
    with pytest.raises(ValueError, match="scale.shape"):
        F.dequantize_nvfp4(packed, s[:, :1], gs)


def test_dequantize_micro_bad_packed_length_names_shape():
    packed, s, gs = F.quantize_nvfp4(torch.randn(4, 64))
    with pytest.raises(ValueError, match="shape"):
        F.dequantize_nvfp4(packed[:, :5], s, gs)  # 10 elements: not a whole 16-element block
    p4, s4 = F.quantize_mxfp4(torch.randn(4, 64))
    with pytest.raises(ValueError, match="shape"):
        F.dequantize_mxfp4(p4[:, :8], s4)


# ---- errors of the wrong kind (RuntimeError / AttributeError instead of a ValueError naming the field) ------
def test_dequantize_fp8_block_wrong_scale_shape():
    q = torch.zeros(300, 300).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="s.shape"):
        F.dequantize_fp8(q, torch.ones(2, 2), (128, 128))  # needs [3, 3]


def test_dequantize_wna16_wrong_g_idx_length():
    p = F.quantize_wna16(torch.randn(16, 64), scalar_types.uint4b8, 16, False)
    with pytest.raises(ValueError, match="weight_g_idx"):
        F.dequantize_wna16(scalar_types.uint4b8, p["weight_packed"], p["weight_scale"], None,
                           torch.zeros(32, dtype=torch.int32), 16)


def test_int8_static_asym_needs_zero_point():
    with pytest.raises(ValueError, match="zero_point"):
        F.quantize_int8_activation(torch.randn(2, 4), False, torch.ones(1), None)


def test_pack_along_bits_must_divide_32():
    with pytest.raises(ValueError, match="bits"):
        F.pack_along(torch.zeros(2, 10, dtype=torch.int32), 3, 1)


def test_dequantize_wna16_wrong_scale_rows_names_field():
    p = F.quantize_wna16(torch.randn(16, 64), scalar_types.uint4b8, 16, False)
    with pytest.raises(ValueError, match="weight_scale.shape"):
        F.dequantize_wna16(scalar_types.uint4b8, p["weight_packed"], p["weight_scale"][:8], None, None, 16)
