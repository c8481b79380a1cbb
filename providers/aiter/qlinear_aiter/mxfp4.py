"""MXFP4 W4A4 on MI350/MI355 (gfx950, the first Instinct with FP4 matrix cores) over aiter's Triton
``gemm_afp4wfp4(x [M, K/2] u8, w [N, K/2] u8, x_scales [M, K/32] e8m0, w_scales [N, K/32] e8m0, dtype, y)``
(module ``aiter.ops.triton.gemm_afp4wfp4``; the path vLLM's AiterMxfp4LinearKernel takes when the
assembly kernel is off).

Both operands are FP4 E2M1, two per byte with element 2i in the low nibble (aiter's ``mxfp4_to_f32``
reads them so; the same as ``qlinear.formats``), one E8M0 scale per 32 elements. The layer's
``weight`` / ``weight_scale`` are already in that layout, so the weight is not re-laid. The
activation is quantized here with ``qlinear.formats.micro.quantize_mxfp4`` — the reference's own
MXFP4 quantizer, so the kernel sees exactly the activation the reference does. The assembly path
(``gemm_a4w4`` on shuffled weight and ``e8m0_shuffle``-d scales) is not used: its signature
changed between aiter releases. Shapes: K % 128, N % 16 (conservative; the Triton kernel's own
limits are unverified). Bias is added after. UNVERIFIED on hardware.
"""

from __future__ import annotations

from qlinear.formats.micro import quantize_mxfp4
from qlinear.kernel import MxFp4LinearKernel

from . import library
from .library import MI350, TRITON_FP4, out16_reason, rocm_gate

UNVERIFIED = "unverified on hardware (no ROCm GPU in this project's CI); Triton-compiles on first use"


class AiterMxFp4LinearKernel(MxFp4LinearKernel):
    provider = "aiter"
    backend = "aiter"
    priority = 25
    notes = UNVERIFIED

    @classmethod
    def is_supported(cls, platform=None):
        ok, why = rocm_gate(platform, (MI350,), (), what="aiter's MXFP4 GEMM (FP4 matrix cores)")
        if not ok:
            return ok, why
        ok, why = library.submodule_status(TRITON_FP4, "gemm_afp4wfp4")
        return (True, None) if ok else (False, f"{why}; kernel unverified on hardware")

    @classmethod
    def can_implement(cls, c):
        n, k = c.weight_shape
        if k % 128 or n % 16:
            return False, f"K={k} must be a multiple of 128 and N={n} of 16"
        why = out16_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        self.replace_parameter(layer, "weight", layer.weight.data.contiguous())  # uint8 [N, K/2]
        self.replace_parameter(layer, "weight_scale", layer.weight_scale.data.contiguous())  # uint8 [N, K/32]

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        out_dtype = c.out_dtype or x.dtype
        xq, xs = quantize_mxfp4(x2)
        gemm = library.submodule(TRITON_FP4).gemm_afp4wfp4
        out = gemm(xq, layer.weight, xs, layer.weight_scale, out_dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
