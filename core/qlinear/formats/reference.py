"""The numeric reference: dequantize the layer's weight, quantize-dequantize the activation the
way the layer's format says, and matmul in a wide dtype. Emulation kernels run this in float32;
tests run it in float64 as ground truth."""

from __future__ import annotations

from typing import Mapping

import torch

from ..config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    LayerConfig,
    MPLinearLayerConfig,
)
from .fp8 import dequantize_fp8, expand_blocks, quantize_fp8_activation
from .int8 import quantize_int8_activation
from .int_pack import dequantize_wna16
from .micro import dequantize_mxfp4, dequantize_mxfp8, dequantize_nvfp4, qdq


def _p(params, name):
    return params.get(name) if isinstance(params, Mapping) else getattr(params, name, None)


def dequantize_weight(c: LayerConfig, params, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The layer's weight as floats [N, K], from its parameters in the as-loaded layout."""
    fam = c.family
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        return dequantize_wna16(c.weight_type, _p(params, "weight_packed"), _p(params, "weight_scale"),
                                _p(params, "weight_zero_point"), _p(params, "weight_g_idx"), c.group_size, dtype)
    if fam in ("int8", "fp8"):
        w = _p(params, "weight").t()  # stored [K, N]
        return w.to(dtype) * _p(params, "weight_scale").to(dtype).reshape(-1, 1)
    if fam == "fp8_block":
        s = _p(params, "weight_scale_inv")
        if s is None:
            s = _p(params, "weight_scale")
        return dequantize_fp8(_p(params, "weight"), s, c.weight_block, dtype)
    if fam == "nvfp4":
        return dequantize_nvfp4(_p(params, "weight"), _p(params, "weight_scale"), _p(params, "weight_global_scale"), dtype)
    if fam == "mxfp4":
        return dequantize_mxfp4(_p(params, "weight"), _p(params, "weight_scale"), dtype)
    if fam == "mxfp8":
        return dequantize_mxfp8(_p(params, "weight"), _p(params, "weight_scale"), dtype)
    raise ValueError(f"config.family: unknown family {fam!r}")


def dequantize_activation(c: LayerConfig, params, x: torch.Tensor, quantize_activation: bool = True,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x [M, K] as the kernel sees it after its activation quantization, back in floats."""
    fam = c.family
    if fam == "mp" or not quantize_activation:
        return x.to(dtype)
    if fam == "int8":
        assert isinstance(c, Int8ScaledMMLinearLayerConfig)
        static = c.is_static_input_scheme
        q, s, zp = quantize_int8_activation(x, c.input_symmetric, _p(params, "input_scale") if static else None,
                                            _p(params, "input_zero_point") if static else None)
        v = q.to(dtype) - (zp.to(dtype) if zp is not None else 0)
        return v * s.to(dtype)
    if fam in ("fp8", "fp8_block"):
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        if x.dtype == torch.float8_e4m3fn:  # already quantized upstream: scale given as input_scale
            return x.to(dtype) * _p(params, "input_scale").to(dtype)
        g = c.activation_quant_key.scale.group_shape
        if fam == "fp8_block":
            q, s = quantize_fp8_activation(x, "group", group=g.col)
            return q.to(dtype) * expand_blocks(s.to(dtype), (1, g.col), q.shape)
        if g.is_per_token():
            q, s = quantize_fp8_activation(x, "token", scale_ub=_p(params, "input_scale_ub"))
        elif c.activation_quant_key.scale.static:
            q, s = quantize_fp8_activation(x, "tensor", scale=_p(params, "input_scale"))
        else:
            q, s = quantize_fp8_activation(x, "tensor")
        return q.to(dtype) * s.to(dtype)
    if fam == "nvfp4":
        return qdq(x, "nvfp4", _p(params, "input_global_scale")).to(dtype)
    if fam in ("mxfp4", "mxfp8"):
        return qdq(x, fam).to(dtype)
    raise ValueError(f"config.family: unknown family {fam!r}")


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
