"""FP8 W8A8 over aiter: CK per-token, CK pre-shuffled per-token, and hipBLASLt per-tensor.

The layer's FP8 is OCP e4m3fn; MI300 (gfx942) computes in e4m3fnuz, so on gfx942 the weight bytes
are kept and its scale doubled at load (``layouts.e4m3fn_to_fnuz``) and activations are quantized
to fnuz (max 240). On gfx950 everything stays e4m3fn. All three emit bf16/fp16 directly.

* ``AiterFp8CKLinearKernel`` — ``gemm_a8w8_CK(XQ, WQ [N,K], x_scale [M,1], w_scale [1,N], bias, dtype)``:
  every FP8 config (per-tensor scales broadcast to the per-token / per-channel vectors); N, K % 16.
* ``AiterFp8PreshuffledLinearKernel`` — ``gemm_a8w8_bpreshuffle(XQ, shuffle_weight(WQ), x_scale,
  w_scale, None, dtype)``: the weight re-laid once in aiter's (16, 16) shuffle order; per-token
  activations x per-channel weights only (the pair vLLM routes there); no bias in the op, so the
  bias is added after; N % 16, K % 32.
* ``AiterFp8HipblasltLinearKernel`` — ``hipb_mm(XQ, WQ^T [K,N], -1, None, dtype, scaleA, scaleB)``:
  per-tensor weight and activation scales (hipBLASLt's scalar scale mode); bias added after.

Gate: ROCm on gfx942 or gfx950, ``import aiter``, the entry point present. UNVERIFIED on hardware.
"""

from __future__ import annotations

import torch

from qlinear.kernel import FP8ScaledMMLinearKernel

from . import activation as A
from .layouts import shuffle_weight, to_device_fp8
from .library import MI300, MI350, fn, fp8_dtype_for, hipb_mm, out16_reason, rocm_gate

UNVERIFIED = "unverified on hardware (no ROCm GPU in this project's CI); JIT-builds its aiter module on first use"


def _out_dtype(c, x: torch.Tensor) -> torch.dtype:
    return c.out_dtype or (x.dtype if x.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16)


def _is_fp8_input(x: torch.Tensor) -> bool:
    return x.dtype in (torch.float8_e4m3fn, torch.float8_e4m3fnuz)


class _AiterFp8(FP8ScaledMMLinearKernel):
    provider = "aiter"
    backend = "aiter"
    notes = UNVERIFIED
    ENTRY: tuple[str, ...] = ()
    K_ALIGN = 16

    @classmethod
    def is_supported(cls, platform=None):
        return rocm_gate(platform, (MI300, MI350), cls.ENTRY, what=f"aiter {cls.ENTRY[0]}")

    @classmethod
    def _shape_ok(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is the fp8_block family"
        n, k = c.weight_shape
        if n % 16 or k % cls.K_ALIGN:
            return False, f"N={n} must be a multiple of 16 and K={k} of {cls.K_ALIGN}"
        why = out16_reason(c)
        return why is None, why

    def _load(self, layer):
        """[K, N] e4m3fn view + scale -> (WQ [N, K] in this GPU's FP8 flavour, w_scale fp32 [N])."""
        wname, sname = self.layer_param_names[:2]
        self.fp8 = fp8_dtype_for()
        n = self.config.weight_shape[0]
        w, s = to_device_fp8(getattr(layer, wname).data.t().contiguous(), getattr(layer, sname).data.float(), self.fp8)
        s = s.reshape(-1)
        return w, (s.expand(n) if s.numel() == 1 else s).contiguous()

    def _quantize(self, layer, x2, per_token: bool):
        """(XQ, x_scale) for this call: [M, 1] scales when ``per_token``, else one scale [1]."""
        _, _, iname, ubname = self.layer_param_names
        c = self.config
        m = x2.shape[0]
        in_scale = getattr(layer, iname, None)
        if _is_fp8_input(x2):
            if x2.dtype != self.fp8:
                raise ValueError(f"x.dtype: this GPU computes in {self.fp8}, got pre-quantized {x2.dtype}")
            s = in_scale.float().reshape(1)
            return x2.contiguous(), (s.expand(m).reshape(m, 1).contiguous() if per_token else s)
        ak = c.activation_quant_key.scale
        if ak.group_shape.is_per_token():
            return A.fp8_per_token(x2, self.fp8, getattr(layer, ubname, None))
        xq, s = A.fp8_per_tensor(x2, self.fp8, in_scale if ak.static else None)
        return xq, (s.expand(m).reshape(m, 1).contiguous() if per_token else s)

    def _run(self, layer, x, bias, per_token: bool, gemm, bias_in_op: bool):
        """Quantize x, then ``gemm(XQ, weight, x_scale, w_scale, bias or None, out_dtype)``; a bias
        the op does not take is added after. Returns [..., N]."""
        wname, sname = self.layer_param_names[:2]
        out_dtype = _out_dtype(self.config, x)
        xq, xs = self._quantize(layer, x.reshape(-1, x.shape[-1]), per_token=per_token)
        b = bias.to(out_dtype) if bias is not None and bias_in_op else None
        out = gemm(xq, getattr(layer, wname), xs, getattr(layer, sname), b, out_dtype)
        if bias is not None and not bias_in_op:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.config.weight_shape[0])


class AiterFp8CKLinearKernel(_AiterFp8):
    priority = 25
    ENTRY = ("gemm_a8w8_CK",)

    @classmethod
    def can_implement(cls, c):
        return cls._shape_ok(c)

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        w, s = self._load(layer)
        self.replace_parameter(layer, wname, w)
        self.replace_parameter(layer, sname, s.reshape(1, -1))  # [1, N]

    def apply_weights(self, layer, x, bias=None):
        return self._run(layer, x, bias, True, fn("gemm_a8w8_CK"), bias_in_op=True)


class AiterFp8PreshuffledLinearKernel(_AiterFp8):
    priority = 27  # vLLM tries the pre-shuffled CK kernel first on MI3xx for per-token x per-channel
    ENTRY = ("gemm_a8w8_bpreshuffle",)
    K_ALIGN = 32

    @classmethod
    def can_implement(cls, c):
        if not (c.activation_quant_key.scale.group_shape.is_per_token()
                and c.weight_quant_key.scale.group_shape.is_per_channel()):
            return False, "needs per-token activation and per-channel weight scales (use the CK or hipBLASLt kernel otherwise)"
        return cls._shape_ok(c)

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        w, s = self._load(layer)
        self.replace_parameter(layer, wname, shuffle_weight(w))
        self.replace_parameter(layer, sname, s.reshape(1, -1))

    def apply_weights(self, layer, x, bias=None):
        return self._run(layer, x, bias, True, fn("gemm_a8w8_bpreshuffle"), bias_in_op=False)  # no bias in the op


class AiterFp8HipblasltLinearKernel(_AiterFp8):
    priority = 26
    ENTRY = ("hipb_mm", "hipb_create_extension")

    @classmethod
    def can_implement(cls, c):
        if not c.weight_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor weight scale (hipBLASLt's scalar scale mode)"
        if not c.activation_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor activation scale (use the CK kernels for per-token)"
        return cls._shape_ok(c)

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        w, s = self._load(layer)
        self.replace_parameter(layer, wname, w)  # [N, K]; passed as its [K, N] transpose (column-major B)
        self.replace_parameter(layer, sname, s[:1].contiguous())  # [1]

    def apply_weights(self, layer, x, bias=None):
        mm = hipb_mm()  # the [N, K] weight passed as its [K, N] transpose (column-major B); scalar scales
        return self._run(layer, x, bias, False, lambda xq, w, xs, ws, b, dt: mm(xq, w.t(), -1, None, dt, xs, ws, None),
                         bias_in_op=False)
