"""Activation quantization in plain torch with ``qlinear.formats``' numerics (so kernel and reference
quantize identically), plus the scale layouts the FlashInfer GEMMs read. FlashInfer has fused
quantizers (``fp4_quantize``, ``mxfp8_quantize``) that would be faster; they are not used until
their scale rounding is checked against the reference on a Blackwell card."""

from __future__ import annotations

import torch

from qlinear.formats.fp8 import quantize_fp8_activation
from qlinear.formats.micro import quantize_mxfp4, quantize_mxfp8, quantize_nvfp4

from .layouts import pad_cols, swizzle_128x4, swizzle_mx_scale_flat


def fp8_static(x2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return quantize_fp8_activation(x2, "tensor", scale=scale)[0]


def fp8_dynamic_tensor(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return quantize_fp8_activation(x2, "tensor")


def nvfp4(x2: torch.Tensor, global_scale: torch.Tensor, k_padded: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (packed uint8 [M, Kp/2], E4M3 scales in the 128x4 layout [round_up(M,128), Kp/16])."""
    q, s, _ = quantize_nvfp4(pad_cols(x2, k_padded), global_scale.float())
    return q, swizzle_128x4(s)


def mxfp4(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (packed uint8 [M, K/2], E8M0 uint8 scales in the 128x4 layout)."""
    q, s = quantize_mxfp4(x2)
    return q, swizzle_128x4(s)


def mxfp8(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (E4M3 [M, K], flat swizzled E8M0 scales of round_up(M, 128) x round_up(K/32, 4)):
    mm_mxfp8 0.7.2 sizes a_descale from the padded M, the data itself stays [M, K]."""
    q, s = quantize_mxfp8(x2)
    return q, swizzle_mx_scale_flat(s)
