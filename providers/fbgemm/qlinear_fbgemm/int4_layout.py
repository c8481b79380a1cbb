"""compressed-tensors wNa16 (4-bit) -> fbgemm's int4 layout for ``bf16i4bf16_rowwise`` / ``f8i4bf16_rowwise``.

fbgemm (bench ``quantize_ops.py``, ``_int4_row_quantize`` / ``_pack_int4``; kernel
``bf16i4bf16_rowwise.cu``):
* ``WQ`` int8 [N, K/2]: signed int4 q in [-8, 7], element 2i in the low nibble, 2i+1 in the high;
* ``w_scale`` and ``w_zp`` [K/G, N] contiguous ("column major" per output channel), float32,
  bf16 or fp16 (both the same dtype);
* the value is ``q * scale + zp`` (CUTLASS mixed-input "scale with zero point").

compressed-tensors stores unsigned codes c in [0, 15] (``weight_packed`` int32 [N, K/8], code k at
bits 4*(k % 8) of word k // 8); uint4b8 means w = (c - 8) * s, uint4 with zero points means
w = (c - z) * s. With q = c - 8 both become q * s + (8 - z) * s, z = 8 for uint4b8. The zero term is
kept in float32 (exact for bf16/fp16 scales times a small integer).
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along


def codes_from_packed(weight_packed: torch.Tensor) -> torch.Tensor:
    """int32 [N, K/8] -> unsigned 4-bit codes int32 [N, K]."""
    return unpack_along(weight_packed, 4, 1)


def pack_int4_signed(q: torch.Tensor) -> torch.Tensor:
    """signed int4 values [N, K] (in [-8, 7]) -> int8 [N, K/2], element 2i in the low nibble."""
    if q.shape[-1] % 2:
        raise ValueError(f"q.shape: K must be even to pack int4 pairs, got {tuple(q.shape)}")
    q = q.to(torch.int32)
    lo, hi = q[..., 0::2] & 0xF, (q[..., 1::2] & 0xF) << 4
    b = (lo | hi).to(torch.int32)
    return torch.where(b >= 128, b - 256, b).to(torch.int8).contiguous()


def unpack_int4_signed(wq: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4_signed``: int8 [N, K/2] -> int32 [N, K] in [-8, 7]."""
    b = wq.to(torch.int32) & 0xFF
    lo, hi = b & 0xF, (b >> 4) & 0xF
    q = torch.stack((lo, hi), dim=-1).reshape(*wq.shape[:-1], wq.shape[-1] * 2)
    return torch.where(q >= 8, q - 16, q)


def to_fbgemm_int4(weight_packed: torch.Tensor, weight_scale: torch.Tensor,
                   weight_zero_point_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(WQ int8 [N, K/2], w_scale fp32 [G, N], w_zp fp32 [G, N]) from compressed-tensors tensors.

    ``weight_zero_point_codes``: unpacked zero points [N, G] (codes in [0, 15]) or None (uint4b8)."""
    codes = codes_from_packed(weight_packed)
    wq = pack_int4_signed(codes - 8)
    s = weight_scale.float()  # [N, G]
    z = torch.full_like(s, 8.0) if weight_zero_point_codes is None else weight_zero_point_codes.float()
    zero = (8.0 - z) * s
    return wq, s.t().contiguous(), zero.t().contiguous()


def dequantize_fbgemm_int4(wq: torch.Tensor, w_scale: torch.Tensor, w_zp: torch.Tensor) -> torch.Tensor:
    """What the kernel computes from its operands, in float64: [N, K] = q * scale + zp per group."""
    q = unpack_int4_signed(wq).double()
    n, k = q.shape
    g = w_scale.shape[0]
    gi = torch.arange(k) // (k // g)
    return q * w_scale.double().t()[:, gi] + w_zp.double().t()[:, gi]
