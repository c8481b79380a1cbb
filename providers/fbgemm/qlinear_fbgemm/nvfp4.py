"""NVFP4 W4A4 over fbgemm's ``f4f4bf16(XQ, WQ, x_scale, w_scale, output=None, global_scale=None)``
(the reference system's ``FbgemmNvFp4LinearKernel``; CUTLASS sm_100a block-scaled FP4). That is the
1.6.0 schema (read from the wheel's op registry); passing ``global_scale`` selects NVFP4, as
fbgemm 1.6.0's own bench (``NVFP4Gemm``) does; older releases had a ``use_mx`` flag instead.

Weights keep their packed layout ([N, K/2], element 2i in the low nibble); the E4M3 block scales are
swizzled once into the 128x4 layout (``qlinear.formats.swizzle``), passed as 2-D uint8 like the bench's
``triton_scale_nvfp4_quant`` output. Each call quantizes the
activation with ``qlinear.formats.quantize_nvfp4`` (same numerics as the reference), swizzles its
scales the same way, and passes ``alpha = 1 / (input_global_scale * weight_global_scale)``.

Gated on sm_100/sm_103 and the library; UNVERIFIED here (no SM100 GPU in this workplace).
"""

from __future__ import annotations

import torch

from qlinear.formats.micro import quantize_nvfp4
from qlinear.kernel import NvFp4LinearKernel

from .library import cuda_gate, op
from qlinear.formats.swizzle import swizzle_128x4


class FbgemmNvFp4LinearKernel(NvFp4LinearKernel):
    provider = "fbgemm"
    backend = "fbgemm"
    priority = 25
    min_capability = 100

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, ("f4f4bf16",), capabilities=(100, 103), what="fbgemm f4f4bf16 (sm_100a)")

    @classmethod
    def can_implement(cls, c):
        n, k = c.weight_shape
        if k % 64:
            return False, f"K={k} must be a multiple of 64 (whole 4-column tiles of 16-element scales)"
        if n % 32:
            return False, f"N={n} must be a multiple of 32"
        return True, None

    def process_weights_after_loading(self, layer):
        self.replace_parameter(layer, "weight", layer.weight.data.contiguous())
        self.replace_parameter(layer, "weight_scale", swizzle_128x4(layer.weight_scale.data).view(torch.uint8))
        alpha = getattr(layer, "alpha", None)
        if alpha is None:
            alpha = 1.0 / (layer.input_global_scale.data.float() * layer.weight_global_scale.data.float())
        self.replace_parameter(layer, "alpha", alpha.data.float().reshape(1))

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        xq, xs, _ = quantize_nvfp4(x2, layer.input_global_scale.float())
        x_sf = swizzle_128x4(xs).view(torch.uint8)
        out = op("f4f4bf16")(xq, layer.weight, x_sf, layer.weight_scale, global_scale=layer.alpha)
        out = out.to(c.out_dtype or x.dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
