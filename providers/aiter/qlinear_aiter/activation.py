"""Activation quantization in plain torch for aiter's GEMMs (aiter's own quantizers are HIP modules
with their own scale conventions; these match ``qlinear.formats`` and work for both FP8 flavours).

Every function returns (q, dequant scale) with x ≈ q * scale, scales in float32."""

from __future__ import annotations

import torch

from qlinear.formats.fp8 import MIN_SCALE

from .layouts import fp8_max, scale_factor


def fp8_per_token(x2: torch.Tensor, dtype: torch.dtype, scale_ub: torch.Tensor | None = None):
    """x [M, K] -> (fp8 [M, K], scale [M, 1]), one dynamic scale per row (clamped by ``scale_ub``)."""
    fmax = fp8_max(dtype)
    amax = x2.float().abs().amax(-1, keepdim=True)
    if scale_ub is not None:
        amax = amax.clamp(max=float(scale_ub.float().reshape(-1)[0]))
    s = (amax / fmax).clamp(min=MIN_SCALE)
    return (x2.float() / s).clamp_(-fmax, fmax).to(dtype), s


def fp8_per_tensor(x2: torch.Tensor, dtype: torch.dtype, static_scale: torch.Tensor | None = None):
    """x [M, K] -> (fp8, scale [1]). ``static_scale`` is the layer's e4m3fn input scale; in fnuz the
    same grid needs twice the scale (see ``layouts.scale_factor``)."""
    fmax = fp8_max(dtype)
    if static_scale is not None:
        s = static_scale.float().reshape(1) * scale_factor(dtype)
    else:
        s = (x2.float().abs().amax().reshape(1) / fmax).clamp(min=MIN_SCALE)
    return (x2.float() / s).clamp_(-fmax, fmax).to(dtype), s


def fp8_groups(x2: torch.Tensor, dtype: torch.dtype, group: int = 128):
    """x [M, K] (K % group == 0) -> (fp8 [M, K], scale [M, K/group]) with one scale per 1 x group."""
    m, k = x2.shape
    fmax = fp8_max(dtype)
    xg = x2.float().reshape(m, k // group, group)
    s = (xg.abs().amax(-1) / fmax).clamp(min=MIN_SCALE)
    q = (xg / s.unsqueeze(-1)).clamp_(-fmax, fmax).to(dtype).reshape(m, k)
    return q, s.contiguous()


def int8_symmetric(x2: torch.Tensor, scale: torch.Tensor | None):
    """x [M, K] -> (int8, scale [M, 1]): static per-tensor when ``scale`` is given (broadcast to the
    rows, as the per-token epilogue reads one scale per row), else dynamic per token."""
    xf = x2.float()
    m = x2.shape[0]
    if scale is not None:
        s = scale.float().reshape(1, 1).expand(m, 1)
    else:
        s = (xf.abs().amax(-1, keepdim=True) / 127.0).clamp(min=1e-10)
    return torch.round(xf / s).clamp_(-128, 127).to(torch.int8), s.contiguous()
