"""Epilogues after an integer / unit-scale GEMM: scales, zero-point correction, bias, cast.
Called through ``compiled.get`` so the chain fuses into one pass over the [M, N] output."""

from __future__ import annotations

import torch


def scale_bias(acc: torch.Tensor, sx: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype):
    """acc (int32 or fp32) [M, N] * sx ([M,1] or [1]) * sw ([1,N] or [1]) + bias (fp32 [N]) -> dtype."""
    return (acc.float() * (sx * sw) + bias).to(dtype)


def azp_scale_bias(acc: torch.Tensor, zp: torch.Tensor, azp_adj: torch.Tensor, sx: torch.Tensor, sw: torch.Tensor,
                   bias: torch.Tensor, dtype: torch.dtype):
    """Asymmetric INT8: x ≈ (q - zp) * sx, so x@W = (q@W - zp * colsum(W)) * sx * sw.
    ``zp`` int32 [M,1] or [1], ``azp_adj`` fp32 [1, N] (column sums of the int8 weight)."""
    return ((acc.float() - zp.float() * azp_adj) * (sx * sw) + bias).to(dtype)
