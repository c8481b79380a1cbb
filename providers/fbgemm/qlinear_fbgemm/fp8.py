"""FP8 W8A8 over fbgemm's CUTLASS sm_90a kernels.

* ``FbgemmFp8RowwiseLinearKernel`` — ``f8f8bf16_rowwise(XQ [M,K], WQ [N,K], x_scale [M], w_scale [N],
  bias, use_fast_accum)``: every FP8 config (per-tensor or per-channel weight; static per-tensor,
  dynamic per-tensor or dynamic per-token activation). Per-token activations are quantized with
  fbgemm's fused ``quantize_fp8_per_row`` (returns the dequant scale, honours ``scale_ub``); a
  per-tensor scale is broadcast to [M]. Bias goes into the epilogue (bf16 or fp32 accepted).
* ``FbgemmFp8TensorwiseLinearKernel`` — per-tensor weight and activation only:
  ``f8f8bf16_tensorwise(XQ, WQ, float scale)`` for a static activation scale (the product of the two
  scales is fixed at load time, one host read then, none per call) and ``f8f8bf16(XQ, WQ, Tensor
  scale)`` for a dynamic one (the scale stays on the device).

Both emit bf16; other output dtypes are a cast. Shapes: K % 16 (16-byte TMA rows of fp8) and N % 8
(16-byte rows of the bf16 output).
"""

from __future__ import annotations

import torch

from qlinear.families import out_dtype
from qlinear.kernel import FP8ScaledMMLinearKernel

from . import activation as A
from .library import cuda_gate, op




def _shape_ok(c) -> tuple[bool, str | None]:
    n, k = c.weight_shape
    if k % 16:
        return False, f"K={k} must be a multiple of 16 (fbgemm FP8 GEMM rows are 16-byte TMA loads)"
    if n % 8:
        return False, f"N={n} must be a multiple of 8 (16-byte rows of the bf16 output)"
    return True, None


class _FbgemmFp8(FP8ScaledMMLinearKernel):
    provider = "fbgemm"
    backend = "fbgemm"
    min_capability = 90
    OPS: tuple[str, ...] = ()

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, cls.OPS, capabilities=(90,), what="fbgemm's FP8 CUTLASS kernels (sm_90a builds)")

    def _weight_nk(self, layer) -> torch.Tensor:
        w = getattr(layer, self.layer_param_names[0])
        return w.data.t().contiguous()  # as loaded: [K, N] view of [N, K]; fbgemm wants WQ [N, K] contiguous


class FbgemmFp8RowwiseLinearKernel(_FbgemmFp8):
    priority = 25
    OPS = ("f8f8bf16_rowwise", "quantize_fp8_per_row")

    @classmethod
    def can_implement(cls, c):
        return _shape_ok(c)

    def process_weights_after_loading(self, layer):
        wname, sname, iname, _ = self.layer_param_names
        n = self.config.weight_shape[0]
        self.replace_parameter(layer, wname, self._weight_nk(layer))
        ws = getattr(layer, sname).data.float().reshape(-1)
        self.replace_parameter(layer, sname, (ws.expand(n) if ws.numel() == 1 else ws).contiguous())  # [N]

    def apply_weights(self, layer, x, bias=None):
        wname, sname, iname, ubname = self.layer_param_names
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        m = x2.shape[0]
        ak = c.activation_quant_key.scale
        in_scale = getattr(layer, iname, None)
        if x2.dtype == torch.float8_e4m3fn:  # quantized upstream with the layer's input scale
            xq, xs = x2.contiguous(), in_scale.float().reshape(1).expand(m).contiguous()
        elif ak.group_shape.is_per_token():
            ub = getattr(layer, ubname, None)
            # quantize_fp8_per_row reads bf16 only: fp16 input gave garbage on the H100 (rel. err 5e2)
            xb = x2 if x2.dtype == torch.bfloat16 else x2.to(torch.bfloat16)
            xq, xs = op("quantize_fp8_per_row")(xb.contiguous(), None, None if ub is None else ub.float().reshape(1))
            xs = xs.reshape(m)
        elif ak.static:
            xq, xs = A.fp8_static(x2, in_scale), in_scale.float().reshape(1).expand(m).contiguous()
        else:
            xq, s = A.fp8_dynamic_tensor(x2)
            xs = s.expand(m).contiguous()
        b = None
        if bias is not None:
            b = bias if bias.dtype in (torch.bfloat16, torch.float32) else bias.float()
        out = op("f8f8bf16_rowwise")(xq, getattr(layer, wname), xs, getattr(layer, sname), b, True)
        return out.to(out_dtype(c, x)).reshape(*x.shape[:-1], c.weight_shape[0])


class FbgemmFp8TensorwiseLinearKernel(_FbgemmFp8):
    priority = 26  # narrower than rowwise: one scalar scale, no scale vectors to build per call
    OPS = ("f8f8bf16_tensorwise", "f8f8bf16")

    @classmethod
    def can_implement(cls, c):
        if not c.weight_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor weight scale (f8f8bf16_tensorwise takes one scalar)"
        if not c.activation_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor activation scale (use the rowwise kernel for per-token)"
        return _shape_ok(c)

    def process_weights_after_loading(self, layer):
        wname, sname, iname, _ = self.layer_param_names
        self.replace_parameter(layer, wname, self._weight_nk(layer))
        ws = getattr(layer, sname).data.float().reshape(1)
        self.replace_parameter(layer, sname, ws)
        in_scale = getattr(layer, iname, None)
        # static activation scale: the combined scale is a load-time constant (f8f8bf16_tensorwise takes a float)
        self.static_scale = float((ws * in_scale.float().reshape(1)).item()) if in_scale is not None else None

    def apply_weights(self, layer, x, bias=None):
        wname, sname, iname, _ = self.layer_param_names
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        w = getattr(layer, wname)
        if x2.dtype == torch.float8_e4m3fn:
            out = op("f8f8bf16")(x2.contiguous(), w, getattr(layer, iname).float().reshape(1) * getattr(layer, sname), True)
        elif c.activation_quant_key.scale.static:
            out = op("f8f8bf16_tensorwise")(A.fp8_static(x2, getattr(layer, iname)), w, self.static_scale, True)
        else:
            xq, s = A.fp8_dynamic_tensor(x2)
            out = op("f8f8bf16")(xq, w, s * getattr(layer, sname), True)
        out = out.to(out_dtype(c, x))
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
