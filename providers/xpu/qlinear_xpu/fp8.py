"""FP8 W8A8 on Intel GPUs.

* ``XpuFp8ScaledMMLinearKernel`` — ``torch._scaled_mm`` on XPU (oneDNN): A fp8 [M, K] row-major,
  B the [K, N] transpose of the [N, K] weight (column-major, as on CUDA), scale_a / scale_b either
  both one float32 scalar (tensorwise) or [M, 1] and [1, N] (row-wise). Per-tensor scales are
  broadcast to row-wise vectors when the other side is not per-tensor. K, N % 16.
* ``XpuKernelsFp8LinearKernel`` — vllm-xpu-kernels' ``torch.ops._xpu_C.fp8_gemm(A, B [K, N], out_dtype,
  A_scale, B_scale, bias)`` (oneDNN): A_scale [1] (per tensor) or [M, 1] (per token), B_scale [1]
  or [N] (per channel), bias fused; the [K, N] transposed view of the loaded [N, K] weight, as
  vLLM's XPU FP8 kernels pass it. Gated on the package importing.

Activations are quantized here (e4m3fn) unless the caller passes fp8 already. UNVERIFIED on hardware.
"""

from __future__ import annotations

import torch

from qlinear.formats.fp8 import quantize_fp8_activation
from qlinear.kernel import FP8ScaledMMLinearKernel

from . import library

FP8 = torch.float8_e4m3fn
UNVERIFIED = "unverified on hardware (no Intel GPU in this project's CI)"


def _out_dtype(c, x: torch.Tensor) -> torch.dtype:
    return c.out_dtype or (x.dtype if x.dtype != FP8 else torch.bfloat16)


class _XpuFp8(FP8ScaledMMLinearKernel):
    provider = "xpu"
    backend = "xpu"
    notes = UNVERIFIED

    @classmethod
    def can_implement(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is the fp8_block family"
        n, k = c.weight_shape
        if n % 16 or k % 16:
            return False, f"N={n} and K={k} must be multiples of 16"
        return True, None

    def _quantize(self, layer, x2):
        """(XQ [M, K] e4m3fn, scale): [1] for a per-tensor activation, [M, 1] per token."""
        _, _, iname, ubname = self.layer_param_names
        c = self.config
        in_scale = getattr(layer, iname, None)
        if x2.dtype == FP8:
            return x2.contiguous(), in_scale.float().reshape(1)
        ak = c.activation_quant_key.scale
        if ak.group_shape.is_per_token():
            q, s = quantize_fp8_activation(x2, "token", scale_ub=getattr(layer, ubname, None))
            return q, s.float().reshape(-1, 1)
        if ak.static:
            q, _ = quantize_fp8_activation(x2, "tensor", scale=in_scale)
            return q, in_scale.float().reshape(1)
        q, s = quantize_fp8_activation(x2, "tensor")
        return q, s.float().reshape(1)

    def _load_nk(self, layer):
        wname, sname = self.layer_param_names[:2]
        w = getattr(layer, wname).data.t().contiguous()  # [N, K]
        return w, getattr(layer, sname).data.float().reshape(-1)


class XpuFp8ScaledMMLinearKernel(_XpuFp8):
    priority = 20

    @classmethod
    def is_supported(cls, platform=None):
        return library.xpu_gate(platform, ("_scaled_mm",))

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        w, s = self._load_nk(layer)
        self.replace_parameter(layer, wname, w)
        self.replace_parameter(layer, sname, s)  # [1] or [N]

    def apply_weights(self, layer, x, bias=None):
        wname, sname = self.layer_param_names[:2]
        c = self.config
        n = c.weight_shape[0]
        x2 = x.reshape(-1, x.shape[-1])
        m = x2.shape[0]
        xq, xs = self._quantize(layer, x2)
        ws = getattr(layer, sname)
        if xs.numel() == 1 and ws.numel() == 1:
            sa, sb = xs.reshape(()), ws.reshape(())  # tensorwise
        else:
            sa = xs.reshape(-1, 1).expand(m, 1).contiguous()
            sb = ws.reshape(1, -1).expand(1, n).contiguous()
        out_dtype = _out_dtype(c, x)
        b = None if bias is None else bias.to(out_dtype)
        out = library.aten("_scaled_mm")(xq, getattr(layer, wname).t(), sa, sb, b, None, out_dtype)
        return out.reshape(*x.shape[:-1], n)


class XpuKernelsFp8LinearKernel(_XpuFp8):
    priority = 25

    @classmethod
    def is_supported(cls, platform=None):
        return library.kernels_gate(platform)

    def process_weights_after_loading(self, layer):
        wname, sname = self.layer_param_names[:2]
        w, s = self._load_nk(layer)
        self.replace_parameter(layer, wname, w)  # [N, K]; passed as its [K, N] view
        self.replace_parameter(layer, sname, s)  # [1] or [N]

    def apply_weights(self, layer, x, bias=None):
        wname, sname = self.layer_param_names[:2]
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        xq, xs = self._quantize(layer, x2)
        out_dtype = _out_dtype(c, x)
        b = None if bias is None else bias.to(out_dtype)
        out = library.xpu_op("fp8_gemm")(xq, getattr(layer, wname).t(), out_dtype, xs, getattr(layer, sname), b)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
