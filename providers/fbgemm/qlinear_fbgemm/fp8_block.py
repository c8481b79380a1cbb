"""Block-scaled FP8 (1x128 activation groups, 128x128 weight blocks) over fbgemm's
``f8f8bf16_groupwise(XQ [M,K], WQ [N,K], x_scale, w_scale)`` (CUTLASS sm_90a, FP8 block-scaled accumulation).

Its scales are MN-major (CUTLASS ``Sm90BlockwiseScaleConfig<1,128,128>`` default): ``x_scale`` is
[K/128, M] and ``w_scale`` is [K/128, N/128], both contiguous. So the loaded ``weight_scale_inv``
[N/128, K/128] is transposed once at load, and each call's activation scales are written
transposed. Whole 128-blocks only: N % 128 and K % 128.

Why not ``f8f8bf16_blockwise``: its ``x_scale`` is one scale per 128x128 block of the activation
(``x_scale.size(0) == ceil_div(M, 128)`` in fbgemm's f8f8bf16_blockwise.cu), i.e. 128 rows share a
scale. That is a different (coarser) activation format from this family's 1x128 groups, so it would
not compute the layer the config describes.
"""

from __future__ import annotations

import torch

from qlinear.kernel import Fp8BlockScaledMMLinearKernel

from . import activation as A
from .library import cuda_gate, op


class FbgemmFp8GroupwiseLinearKernel(Fp8BlockScaledMMLinearKernel):
    provider = "fbgemm"
    backend = "fbgemm"
    priority = 18  # slower than triton (20) and torch on the H100: 30.6 vs 20.0 us graph at 4096^2 M=1 (docs/gpu-results.md)
    min_capability = 90

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, ("f8f8bf16_groupwise",), capabilities=(90,), what="fbgemm f8f8bf16_groupwise (sm_90a)")

    @classmethod
    def can_implement(cls, c):
        if c.weight_block != (128, 128) or c.activation_quant_key.scale.group_shape.col != 128:
            return False, f"needs 128x128 weight blocks and 1x128 activation groups, got {c.weight_block}"
        n, k = c.weight_shape
        if n % 128 or k % 128:
            return False, f"N={n} and K={k} must be multiples of 128 (whole scale blocks)"
        return True, None

    def process_weights_after_loading(self, layer):
        name = "weight_scale_inv" if getattr(layer, "weight_scale_inv", None) is not None else "weight_scale"
        self.scale_name = name
        self.replace_parameter(layer, "weight", layer.weight.data.contiguous())
        self.replace_parameter(layer, name, getattr(layer, name).data.float().t().contiguous())  # [K/128, N/128]

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        if x2.dtype == torch.float8_e4m3fn:
            raise ValueError("x.dtype: fbgemm groupwise quantizes 16-bit activations itself; pass bf16/fp16")
        m = x2.shape[0]
        pad = -m % 4  # x_scale is [K/128, M] read by TMA: its rows need 16-byte (4-float) strides
        if pad:
            x2 = torch.nn.functional.pad(x2, (0, 0, 0, pad))
        xq, xs = A.fp8_groups(x2)
        out = op("f8f8bf16_groupwise")(xq, layer.weight, xs.t().contiguous(), getattr(layer, self.scale_name))[:m]
        out = out.to(c.out_dtype or x.dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
