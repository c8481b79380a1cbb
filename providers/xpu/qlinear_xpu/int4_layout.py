"""compressed-tensors wNa16 (4-bit) -> the operands of torch's XPU int4 GEMM.

``aten::_weight_int4pack_mm_with_scales_and_zeros(A [M,K], B, qGroupSize, qScale, qZeros)`` on XPU
(oneDNN) computes A @ W^T with W[n, k] = (q[n, k] - qZeros[g, n]) * qScale[g, n], g = k // group:
* B is ``aten::_convert_weight_to_int4pack(u8 [N, K/2], innerKTiles=8)`` on the XPU device, where
  ``u8`` holds unsigned codes q in [0, 15], element 2i in the low nibble and 2i+1 in the high one
  (torchao's Int4PlainInt32Tensor builds it the same way);
* qScale is [K/G, N] in the activation dtype, qZeros is int8 [K/G, N] (integer zero points).

compressed-tensors stores the same unsigned codes (``weight_packed`` int32 [N, K/8], code k at bits
4*(k % 8) of word k // 8): uint4b8 is w = (c - 8) * s (zero point 8), uint4 with zero points is
w = (c - z) * s, z packed int32 [N/8, G] along N. So the re-layout is a re-packing of the same
codes plus transposed scales and zero points; nothing is requantized.
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along


def codes_from_packed(weight_packed: torch.Tensor) -> torch.Tensor:
    """int32 [N, K/8] -> unsigned 4-bit codes int32 [N, K]."""
    return unpack_along(weight_packed, 4, 1)


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, K] in [0, 15] -> uint8 [N, K/2]: element 2i in the low nibble, 2i+1 in the high."""
    if codes.shape[-1] % 2:
        raise ValueError(f"codes.shape: K must be even to pack int4 pairs, got {tuple(codes.shape)}")
    c = codes.to(torch.int32)
    if int(c.min()) < 0 or int(c.max()) > 15:
        raise ValueError("codes: 4-bit codes must lie in [0, 15]")
    return (c[..., 0::2] | (c[..., 1::2] << 4)).to(torch.uint8).contiguous()


def unpack_nibbles(u8: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_nibbles``: uint8 [N, K/2] -> int32 codes [N, K]."""
    b = u8.to(torch.int32)
    return torch.stack((b & 0xF, (b >> 4) & 0xF), dim=-1).reshape(*u8.shape[:-1], u8.shape[-1] * 2)


def to_xpu_int4(weight_packed: torch.Tensor, weight_scale: torch.Tensor, zero_point_codes: torch.Tensor | None,
                act_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u8 [N, K/2] for ``_convert_weight_to_int4pack``, qScale [G, N] act dtype, qZeros int8 [G, N]).

    ``zero_point_codes``: unpacked zero points [N, G] (codes in [0, 15]) or None (uint4b8: 8)."""
    u8 = pack_nibbles(codes_from_packed(weight_packed))
    s = weight_scale.to(act_dtype)  # [N, G]
    z = torch.full(s.shape, 8, dtype=torch.int8, device=s.device) if zero_point_codes is None else zero_point_codes.to(torch.int8)
    return u8, s.t().contiguous(), z.t().contiguous()


def dequantize_xpu_int4(u8: torch.Tensor, q_scale: torch.Tensor, q_zeros: torch.Tensor) -> torch.Tensor:
    """What the XPU op computes from its operands (before packing), in float64: W [N, K]."""
    q = unpack_nibbles(u8).double()
    n, k = q.shape
    g = q_scale.shape[0]
    gi = torch.arange(k, device=u8.device) // (k // g)
    return (q - q_zeros.double().t()[:, gi]) * q_scale.double().t()[:, gi]
