"""FP8 per-tensor W8A8 over FlashInfer's ``bmm_fp8(A [b,m,k], B [b,k,n] column-major, A_scale, B_scale,
dtype, out=None, backend="cublas")`` (flashinfer/gemm/gemm_base.py; the cuBLASLt backend's table lists
sm_89/90/100/103/120/121, so it also runs on the H100).

The loaded weight is already the [K, N] column-major view of a contiguous [N, K] that ``B`` wants.
Both scales are single fp32 values on the device; a dynamic activation scale is computed on the
device (no host sync). JIT-compiles on first use (~34 s on an H100), never at import or selection.
Measured on the H100 at 4096x4096, M=16: 49.7 µs (torch._scaled_mm: 18.5 µs), hence a low priority.
"""

from __future__ import annotations

import torch

from qlinear.kernel import FP8ScaledMMLinearKernel

from . import activation as A
from .library import JIT_NOTE, cuda_gate, fn


class FlashInferFp8ScaledMMLinearKernel(FP8ScaledMMLinearKernel):
    provider = "flashinfer"
    backend = "flashinfer"
    priority = 15
    min_capability = 89
    notes = JIT_NOTE

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, min_capability=89, function="bmm_fp8", backend="cublas")

    @classmethod
    def can_implement(cls, c):
        if not c.weight_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor weight scale (bmm_fp8 takes one B_scale)"
        if not c.activation_quant_key.scale.group_shape.is_per_tensor():
            return False, "needs a per-tensor activation scale (bmm_fp8 takes one A_scale)"
        n, k = c.weight_shape
        if k % 16 or n % 16:
            return False, f"N={n} and K={k} must be multiples of 16 (cuBLASLt FP8 leading dimensions)"
        return True, None

    def process_weights_after_loading(self, layer):
        wname, sname, iname, _ = self.layer_param_names
        w_nk = getattr(layer, wname).data.t().contiguous()
        self.replace_parameter(layer, wname, w_nk.t())  # [K, N] view of a contiguous [N, K]: column-major B
        self.replace_parameter(layer, sname, getattr(layer, sname).data.float().reshape(1))
        if getattr(layer, iname, None) is not None:
            self.replace_parameter(layer, iname, getattr(layer, iname).data.float().reshape(1))

    def apply_weights(self, layer, x, bias=None):
        wname, sname, iname, _ = self.layer_param_names
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        if x2.dtype == torch.float8_e4m3fn:
            xq, xs = x2.contiguous(), getattr(layer, iname)
        elif c.activation_quant_key.scale.static:
            xq, xs = A.fp8_static(x2, getattr(layer, iname)), getattr(layer, iname)
        else:
            xq, xs = A.fp8_dynamic_tensor(x2)
        want = c.out_dtype or (x.dtype if x.dtype != torch.float8_e4m3fn else torch.bfloat16)
        dt = want if want in (torch.bfloat16, torch.float16) else torch.bfloat16
        out = fn("bmm_fp8")(xq.unsqueeze(0), getattr(layer, wname).unsqueeze(0), xs, getattr(layer, sname), dt,
                            None, "cublas")[0]
        out = out.to(want)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
