"""INT8 W8A8 over aiter's CK ``gemm_a8w8_CK`` (per-token x per-channel scales in the epilogue).

The CK kernel reads one activation scale per row (``x_scale`` [M, 1]) and one weight scale per
column (``w_scale`` [1, N]), both float32, and adds a bias of the output dtype. Every symmetric
INT8 layer maps onto that: a per-tensor weight scale is broadcast to [1, N] once at load, a static
per-tensor activation scale to [M, 1] per call. Asymmetric activations are refused (the CK epilogue
has no zero-point term). Shapes: N and K multiples of 16; output bf16 or fp16.
Gate: ROCm on MI300 (gfx942) or MI350/355 (gfx950), ``import aiter``. UNVERIFIED on hardware.
"""

from __future__ import annotations

from qlinear.kernel import Int8ScaledMMLinearKernel

from . import activation as A
from .library import MI300, MI350, fn, out16_reason, rocm_gate

UNVERIFIED = "unverified on hardware (no ROCm GPU in this project's CI); JIT-builds its CK module on first use"


class AiterInt8ScaledMMLinearKernel(Int8ScaledMMLinearKernel):
    provider = "aiter"
    backend = "aiter"
    priority = 25
    notes = UNVERIFIED

    @classmethod
    def is_supported(cls, platform=None):
        return rocm_gate(platform, (MI300, MI350), ("gemm_a8w8_CK",), what="aiter's CK gemm_a8w8")

    @classmethod
    def can_implement(cls, c):
        if not c.input_symmetric:
            return False, "asymmetric activations: the CK epilogue has no zero-point term"
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to check the CK tile alignment"
        n, k = c.weight_shape
        if n % 16 or k % 16:
            return False, f"N={n} and K={k} must be multiples of 16"
        why = out16_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        n = self.config.weight_shape[0]
        self.replace_parameter(layer, wname, getattr(layer, wname).data.t().contiguous())  # [N, K]
        ws = getattr(layer, sname).data.float().reshape(-1)
        self.replace_parameter(layer, sname, ws.expand(n).reshape(1, n).contiguous() if ws.numel() == 1 else ws.reshape(1, n).contiguous())

    def apply_weights(self, layer, x, bias=None):
        wname, sname, iname = self.layer_param_names[:3]
        c = self.config
        out_dtype = c.out_dtype or x.dtype
        x2 = x.reshape(-1, x.shape[-1])
        xq, xs = A.int8_symmetric(x2, getattr(layer, iname) if c.is_static_input_scheme else None)
        b = None if bias is None else bias.to(out_dtype)
        out = fn("gemm_a8w8_CK")(xq.contiguous(), getattr(layer, wname), xs, getattr(layer, sname), b, out_dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
