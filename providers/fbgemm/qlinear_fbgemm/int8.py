"""INT8 W8A8 over fbgemm's ``i8i8bf16(XQ int8 [M,K], WQ int8 [N,K], float scale, split_k)``.

The op applies ONE float scale in its epilogue (``LinearCombination{scale, 0}``, fbgemm
i8i8bf16.cu), so:
* static per-tensor activation x per-tensor weight: the product of the two scales is a load-time
  constant, fused exactly;
* anything per-token / per-channel: the op runs with scale 1.0, its bf16 output holds the int32
  dot products rounded to 8 significant bits (a 2^-9 relative error, far inside the INT8
  tolerance), and the scales are applied after in fp32.
Symmetric activations only: an asymmetric zero-point correction (zp * column sums) would be
subtracted from the bf16-rounded products, cancelling catastrophically.
Shapes: K % 16 (16-byte int8 rows), N % 8 (16-byte bf16 output rows). The CUTLASS 2.x (sm_80)
path of the op runs on cc >= 80; checked here on sm_90 only.
"""

from __future__ import annotations


from qlinear.kernel import Int8ScaledMMLinearKernel

from . import activation as A
from .library import cuda_gate, op


class FbgemmInt8LinearKernel(Int8ScaledMMLinearKernel):
    provider = "fbgemm"
    backend = "fbgemm"
    priority = 17  # slower than triton (20) and torch (19) on the H100: 54.6 vs 18.3 us graph at 4096^2 M=1 (docs/gpu-results.md)
    min_capability = 80

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, ("i8i8bf16",), min_capability=80)

    @classmethod
    def can_implement(cls, c):
        if not c.input_symmetric:
            return False, "asymmetric activations need an azp correction that i8i8bf16's bf16 output can't carry exactly"
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to check fbgemm's alignment"
        n, k = c.weight_shape
        if k % 16:
            return False, f"K={k} must be a multiple of 16 (16-byte int8 rows)"
        if n % 8:
            return False, f"N={n} must be a multiple of 8 (16-byte bf16 output rows)"
        return True, None

    def process_weights_after_loading(self, layer):
        wname, sname, iname = self.layer_param_names[:3]
        self.replace_parameter(layer, wname, getattr(layer, wname).data.t().contiguous())  # [N, K]
        ws = getattr(layer, sname).data.float().reshape(-1)
        self.replace_parameter(layer, sname, ws)
        in_scale = getattr(layer, iname, None)
        c = self.config
        self.fused_scale = None
        if c.is_static_input_scheme and not c.is_channelwise and in_scale is not None:
            self.fused_scale = float((ws * in_scale.float().reshape(1)).item())  # one host read, at load

    def apply_weights(self, layer, x, bias=None):
        wname, sname, iname = self.layer_param_names[:3]
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        xq, xs = A.int8_symmetric(x2, getattr(layer, iname) if c.is_static_input_scheme else None)
        w = getattr(layer, wname)
        if self.fused_scale is not None:
            out = op("i8i8bf16")(xq.contiguous(), w, self.fused_scale, 1).float()
        else:
            acc = op("i8i8bf16")(xq.contiguous(), w, 1.0, 1)
            out = acc.float() * xs * getattr(layer, sname).reshape(1, -1)
        if bias is not None:
            out = out + bias.float()
        return out.to(c.out_dtype or x.dtype).reshape(*x.shape[:-1], c.weight_shape[0])
