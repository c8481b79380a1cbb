"""Block-scaled FP8 (1x128 activation groups, 128x128 weight blocks) over aiter's CK
``gemm_a8w8_blockscale(XQ [M,K], WQ [N,K], x_scale [M, K/128], w_scale [N/128, K/128], dtype)``.

Scales are float32 and row-major as loaded (aiter's op test feeds the non-preshuffled CK kernel
``x_scale`` [M, K/128] untransposed; only its pre-shuffled variant wants it K-major). On MI300 the
weight becomes e4m3fnuz with every block scale doubled. K % 128 (whole activation groups), N % 16.
Gate: ROCm on gfx942 or gfx950, ``import aiter``. UNVERIFIED on hardware.
"""

from __future__ import annotations

from qlinear.kernel import Fp8BlockScaledMMLinearKernel

from . import activation as A
from .layouts import to_device_fp8
from .library import MI300, MI350, fn, fp8_dtype_for, out16_reason, rocm_gate

UNVERIFIED = "unverified on hardware (no ROCm GPU in this project's CI); JIT-builds its CK module on first use"


class AiterFp8BlockScaledLinearKernel(Fp8BlockScaledMMLinearKernel):
    provider = "aiter"
    backend = "aiter"
    priority = 25
    notes = UNVERIFIED
    apply_input_quant = False  # takes the 16-bit activation and quantizes it per 1x128 group itself

    @classmethod
    def is_supported(cls, platform=None):
        return rocm_gate(platform, (MI300, MI350), ("gemm_a8w8_blockscale",), what="aiter's CK gemm_a8w8_blockscale")

    @classmethod
    def can_implement(cls, c):
        why = cls.deepseek_layout_reason(c)
        if why:
            return False, why
        n, k = c.weight_shape
        if k % 128 or n % 16:
            return False, f"K={k} must be a multiple of 128 (whole activation groups) and N={n} of 16"
        why = out16_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        name = "weight_scale_inv" if getattr(layer, "weight_scale_inv", None) is not None else "weight_scale"
        self.scale_name = name
        self.fp8 = fp8_dtype_for()
        w, s = to_device_fp8(layer.weight.data.contiguous(), getattr(layer, name).data.float(), self.fp8)
        self.replace_parameter(layer, "weight", w)
        self.replace_parameter(layer, name, s.contiguous())  # [ceil(N/128), K/128]

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        if not x2.is_floating_point() or x2.element_size() == 1:
            raise ValueError("x.dtype: aiter's block FP8 kernel quantizes 16-bit activations itself; pass bf16/fp16")
        out_dtype = c.out_dtype or x.dtype
        xq, xs = A.fp8_groups(x2, self.fp8)
        out = fn("gemm_a8w8_blockscale")(xq, layer.weight, xs, getattr(layer, self.scale_name), out_dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
