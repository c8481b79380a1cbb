"""CutlassFP8ScaledMMLinearKernel: FP8 (e4m3) W8A8 on Hopper, scales and bias in the GEMM's epilogue.

Weights per-tensor or per-channel; activations static per-tensor (one quantization launch),
dynamic per-token (one launch, with the optional ``input_scale_ub``), dynamic per-tensor (an amax
launch, then the quantization), or already FP8 with ``input_scale``. Then one CUTLASS GEMM:
``out = a_s[m] * (w_s[n] * (q @ W^T)) + bias[n]`` in bf16 / fp16.
"""

from __future__ import annotations

import torch

from qlinear.kernel import FP8ScaledMMLinearKernel

from .scaled_mm import CutlassW8A8Mixin, as_rows, flat_scale, one_float, weight_nk

FP8 = torch.float8_e4m3fn


class CutlassFP8ScaledMMLinearKernel(CutlassW8A8Mixin, FP8ScaledMMLinearKernel):
    @classmethod
    def can_implement(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is the fp8_block family"
        why = cls.shape_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        from .build import load_extension

        w_name, s_name, is_name, ub_name = self.layer_param_names
        c = self.config
        w_nk = weight_nk(getattr(layer, w_name).data, FP8, w_name)
        n = w_nk.shape[0]
        self.replace_parameter(layer, w_name, w_nk.t())  # the family's [K, N] view, [N, K] storage
        self.replace_parameter(layer, s_name, flat_scale(getattr(layer, s_name, None), n, s_name,
                                                         getattr(layer, "logical_widths", None)))
        key = c.activation_quant_key.scale
        xs = getattr(layer, is_name, None)
        if key.static or xs is not None:  # dynamic schemes keep it for already-FP8 inputs
            self.replace_parameter(layer, is_name, one_float(xs, is_name, "a static FP8 activation scheme"))
        ub = getattr(layer, ub_name, None) if ub_name else None
        if ub is not None:
            self.replace_parameter(layer, ub_name, one_float(ub, ub_name, "input_scale_ub"))
        self._mode = "token" if key.group_shape.is_per_token() else ("static" if key.static else "tensor")
        self._nk = (n, w_nk.shape[1])
        self._ext = load_extension()  # build here, never in apply

    def _quantize(self, layer, x2):
        """x [M, K] 16-bit -> (fp8 q [M, K], fp32 scale [1] or [M])."""
        _, _, is_name, ub_name = self.layer_param_names
        m, k = x2.shape
        q = torch.empty((m, k), dtype=FP8, device=x2.device)
        if self._mode == "static":
            s = getattr(layer, is_name)
            self._ext.quant_static(x2, q, s, None)
        elif self._mode == "token":
            s = torch.empty(m, dtype=torch.float32, device=x2.device)
            self._ext.quant_per_token(x2, q, s, None, getattr(layer, ub_name, None) if ub_name else None)
        else:
            s = torch.empty(1, dtype=torch.float32, device=x2.device)
            amax = torch.empty(1, dtype=torch.float32, device=x2.device)
            self._ext.quant_per_tensor_fp8(x2, q, s, amax)
        return q, s

    def apply_weights(self, layer, x, bias=None):
        w_name, s_name, is_name, _ = self.layer_param_names
        n, k = self._nk
        lead = x.shape[:-1]
        if x.dtype == FP8:  # quantized upstream: its scale is the layer's input_scale
            xs = getattr(layer, is_name, None)
            if xs is None:
                raise ValueError(f"x.dtype: an FP8 input needs the layer's {is_name}")
            q, s = x.reshape(-1, k).contiguous(), xs
        else:
            q, s = self._quantize(layer, as_rows(x, k))
        w_nk = getattr(layer, w_name).t()
        out = self._launch(q, w_nk, s, getattr(layer, s_name), bias, None, None, self._out_dtype(x), n)
        return out.reshape(*lead, n)
