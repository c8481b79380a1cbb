"""Activation quantization in plain torch, matching ``qlinear.formats`` (the reference) exactly,
for the cases where fbgemm has no fused quantizer that takes our scale conventions."""

from __future__ import annotations

import torch

from qlinear.formats.codes import FP8, FP8_MAX
from qlinear.formats.fp8 import MIN_SCALE, quantize_fp8_activation


def fp8_static(x2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [M, K] with a static per-tensor scale -> fp8 (x ≈ q * scale): the reference's quantizer."""
    return quantize_fp8_activation(x2, "tensor", scale=scale)[0]


def fp8_dynamic_tensor(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (fp8, scale [1]) with one dynamic scale for the whole tensor (no host sync)."""
    return quantize_fp8_activation(x2, "tensor")


def fp8_groups(x2: torch.Tensor, group: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] (K % group == 0) -> (fp8 [M, K], scale [M, K/group]), one dynamic scale per 1 x group."""
    m, k = x2.shape
    xg = x2.float().reshape(m, k // group, group)
    s = (xg.abs().amax(-1) / FP8_MAX).clamp(min=MIN_SCALE)
    q = (xg / s.unsqueeze(-1)).clamp_(-FP8_MAX, FP8_MAX).to(FP8).reshape(m, k)
    return q, s


def int8_symmetric(x2: torch.Tensor, scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (int8, scale): static per-tensor when ``scale`` is given, else dynamic per token [M, 1]."""
    xf = x2.float()
    s = scale.float().reshape(1, 1) if scale is not None else (xf.abs().amax(-1, keepdim=True) / 127.0).clamp(min=1e-10)
    return torch.round(xf / s).clamp_(-128, 127).to(torch.int8), s
