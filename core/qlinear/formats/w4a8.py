"""W4A8 weights: int4 codes, FP8 E4M3 group scales, fp32 channel scales.

    w[n, k] = e4m3(q[n, k] * s_g[n, k // G]) * s_ch[n],   q in [-8, 7]

The product q * s_g is rounded to E4M3 (nearest even): in a W4A8 GEMM the scaled weight is an operand
of the FP8 tensor-core MMA, so every kernel that feeds one rounds there (CUTLASS's int4 x FP8 path
reads it from a per-group table of the eight products -8 s_g ... -1 s_g, already in E4M3). The
channel scale and the activation's per-token scale are applied to the fp32 accumulator.

Stored as compressed-tensors pack-quantized: ``weight_packed`` int32 [N, K/8] holds q + 8 (uint4b8)
packed 8 per word along K, ``weight_scale`` [N, K/G] the group scales, ``weight_chan_scale`` fp32
[N, 1]. A group scale must satisfy 8 s_g <= 448 (the largest E4M3 value), so s_g <= 56.
"""

from __future__ import annotations

import torch

from .codes import FP8_MAX, to_e4m3
from .int_pack import pack_along, unpack_along

GROUP_SCALE_MAX = FP8_MAX / 8  # 8 * s_g must be an E4M3 value
# Quantization puts each channel's largest group scale here: |q s_g| <= 8 * 16 = 128 stays clear of
# 448, and the smaller groups keep E4M3's 3 mantissa bits down to s_g = 2^-6 (1/1024 of the largest)
GROUP_SCALE_TARGET = 16.0
E4M3_MIN_SUBNORMAL = 2.0 ** -9


def group_scales_e4m3(weight_scale: torch.Tensor) -> torch.Tensor:
    """The group scales as E4M3 (a 16/32-bit table is rounded to nearest even), checked to lie in
    [0, 56]: a ValueError naming ``weight_scale`` otherwise."""
    s = weight_scale
    if s.dtype != torch.float8_e4m3fn:
        if not s.dtype.is_floating_point:
            raise ValueError(f"weight_scale: expected float8_e4m3fn or a float dtype, got {s.dtype}")
        sf = s.float()
        if s.numel() and not bool(torch.isfinite(sf).all()):
            raise ValueError("weight_scale: holds NaN or inf")
        s = sf.clamp(max=FP8_MAX).to(torch.float8_e4m3fn)
    sf = s.float()
    if s.numel() and not bool(((sf >= 0) & (sf <= GROUP_SCALE_MAX)).all()):
        raise ValueError(f"weight_scale: W4A8 group scales must lie in [0, {GROUP_SCALE_MAX:g}] (8 * scale must be an "
                         f"E4M3 value); got min {float(sf.min()):g}, max {float(sf.max()):g}")
    return s


def scaled_codes(q: torch.Tensor, s_g: torch.Tensor, group: int) -> torch.Tensor:
    """e4m3(q * s_g) as float32 [N, K]: signed codes q [N, K], E4M3 group scales [N, K/group]."""
    prod = q.float() * s_g.float().repeat_interleave(group, dim=1)
    return prod.to(torch.float8_e4m3fn).float()  # |prod| <= 448 (checked scales), so the cast is exact RNE


def signed_codes(weight_packed: torch.Tensor) -> torch.Tensor:
    """int32 [N, K/8] of uint4b8 codes -> q [N, K] in [-8, 7] (int32)."""
    if weight_packed.dtype != torch.int32 or weight_packed.dim() != 2:
        raise ValueError(f"weight_packed: expected int32 [N, K/8], got {weight_packed.dtype} {tuple(weight_packed.shape)}")
    return unpack_along(weight_packed, 4, 1) - 8


def dequantize_w4a8(weight_packed: torch.Tensor, weight_scale: torch.Tensor, weight_chan_scale: torch.Tensor,
                    group_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The weight [N, K] as floats."""
    q = signed_codes(weight_packed)
    n, k = q.shape
    g = k if group_size == -1 else group_size
    s_g = group_scales_e4m3(weight_scale)
    if tuple(s_g.shape) != (n, k // g):
        raise ValueError(f"weight_scale.shape: expected [{n}, {k // g}], got {tuple(weight_scale.shape)}")
    if weight_chan_scale.numel() != n:
        raise ValueError(f"weight_chan_scale.shape: expected [{n}, 1], got {tuple(weight_chan_scale.shape)}")
    w = scaled_codes(q, s_g, g).to(torch.float64 if dtype == torch.float64 else torch.float32)
    return (w * weight_chan_scale.reshape(n, 1).to(w.dtype)).to(dtype)


def quantize_w4a8(w: torch.Tensor, group_size: int) -> dict[str, torch.Tensor]:
    """A float weight [N, K] -> the as-loaded parameters. Per group the ideal scale is amax / 7; each
    channel's fp32 scale puts its largest group at GROUP_SCALE_TARGET, the group scales are rounded to
    E4M3, and the codes are chosen against the rounded scales."""
    n, k = w.shape
    g = k if group_size == -1 else group_size
    wf = w.float().reshape(n, k // g, g)
    ideal = wf.abs().amax(-1) / 7  # [N, G]
    s_ch = ideal.amax(-1, keepdim=True) / GROUP_SCALE_TARGET  # [N, 1]
    s_ch = torch.where(s_ch > 0, s_ch, torch.ones_like(s_ch))
    s_g = to_e4m3((ideal / s_ch).clamp(min=E4M3_MIN_SUBNORMAL))
    step = s_g.float() * s_ch  # [N, G]
    q = torch.round(wf / step.unsqueeze(-1)).clamp(-8, 7).reshape(n, k).to(torch.int32)
    return {"weight_packed": pack_along(q + 8, 4, 1), "weight_scale": s_g, "weight_chan_scale": s_ch.float()}
