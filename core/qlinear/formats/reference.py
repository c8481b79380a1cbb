"""The numeric reference: dequantize the layer's weight, quantize-dequantize the activation the
way the layer's format says, and matmul in a wide dtype. Emulation kernels run this in float32;
tests run it in float64 as ground truth."""

from __future__ import annotations

import torch

from ..config import LayerConfig


def dequantize_weight(c: LayerConfig, params, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The layer's weight as floats [N, K], from its parameters in the as-loaded layout."""
    from ..families import family_of, getter  # the descriptors import this package's formats

    return family_of(c).dequantize_weight(c, getter(params), dtype)


def dequantize_activation(c: LayerConfig, params, x: torch.Tensor, quantize_activation: bool = True,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x [M, K] as the kernel sees it after its activation quantization, back in floats."""
    from ..families import family_of, getter

    if not quantize_activation:
        return x.to(dtype)
    return family_of(c).dequantize_activation(c, getter(params), x, dtype)


def reference_linear(c: LayerConfig, params, x: torch.Tensor, bias: torch.Tensor | None = None,
                     quantize_activation: bool = True, dtype: torch.dtype = torch.float64,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """x [..., K] -> [..., N] in ``dtype``: quantize-dequantize x, dequantize W, matmul, add bias.
    ``weight`` may pass an already dequantized [N, K] weight (emulation caches it)."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    xd = dequantize_activation(c, params, x2, quantize_activation, dtype)
    w = weight.to(dtype) if weight is not None else dequantize_weight(c, params, dtype)
    out = xd @ w.t()
    if bias is not None:
        out = out + bias.to(dtype)
    return out.reshape(*lead, w.shape[0])
