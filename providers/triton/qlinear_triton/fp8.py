"""TritonFP8ScaledMMLinearKernel: FP8 (e4m3) W8A8 with per-tensor / per-channel weight scales.

Activations: static per-tensor or dynamic per-token (one fused quantization launch, per-token with
the optional ``input_scale_ub``, then the GEMM), dynamic per-tensor (two quantization launches), or
already-FP8 input with ``input_scale``.
"""

from __future__ import annotations

import torch

from qlinear.kernel import FP8ScaledMMLinearKernel

from .base import TritonKernelMixin, io_dtype_reason, out_dtype_of
from .scaled_mm import QuantInGemm, as_2d, default_tiles, launch_scaled_mm, load_static_input_scale, load_weight_and_scale


class TritonFP8ScaledMMLinearKernel(QuantInGemm, TritonKernelMixin, FP8ScaledMMLinearKernel):
    needs_fp8 = True
    min_capability = 89
    def handles_non_finite(self, m):
        return self._mode == "static" and m <= self.static_fused_max_m

    @classmethod
    def can_implement(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is TritonFp8BlockScaledMMLinearKernel's"
        why = io_dtype_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        from . import mm_kernels, quant

        w_name, s_name, is_name, ub_name = self.layer_param_names
        c = self.config
        w_nk, self._b_per_col = load_weight_and_scale(self, layer, w_name, s_name, torch.float8_e4m3fn)
        n, k = w_nk.shape
        key = c.activation_quant_key.scale
        if key.static or getattr(layer, is_name, None) is not None:  # dynamic: kept for already-FP8 inputs
            load_static_input_scale(self, layer, is_name, "a static FP8 activation scheme")
        ub = getattr(layer, ub_name, None) if ub_name else None
        if ub is not None:
            self.replace_parameter(layer, ub_name, ub.data.reshape(-1)[:1].to(torch.float32).contiguous())
        self._mode = "token" if key.group_shape.is_per_token() else ("static" if key.static else "tensor")
        self._kernel = mm_kernels.scaled_mm_kernel
        self._q_token = quant.quant_fp8_per_token
        self._q_tensor = quant.quant_fp8_per_tensor
        self._q_static = quant.quant_fp8_static
        self._tiles = default_tiles(n, k, w_nk.device)
        self._nk = (n, k)

    def apply_weights(self, layer, x, bias=None):
        w_name, s_name, is_name, ub_name = self.layer_param_names
        n, k = self._nk
        x2 = as_2d(x, k)
        out = torch.empty((x2.shape[0], n), dtype=out_dtype_of(self.config, x), device=x.device)
        if x2.shape[0] == 0:
            return out.reshape(*x.shape[:-1], n)
        w_nk = getattr(layer, w_name).t()
        ws = getattr(layer, s_name)
        mode = self._mode
        if x2.dtype == torch.float8_e4m3fn:  # quantized upstream: its scale is the layer's input_scale
            xs = getattr(layer, is_name, None)
            if xs is None:
                raise ValueError(f"x.dtype: an FP8 input needs the layer's {is_name}")
            q, s, a_mode, per_row = x2, xs, 0, False
        elif mode == "static":
            s = getattr(layer, is_name)
            if x2.shape[0] <= self.static_fused_max_m:  # quantized in the GEMM, NaN/inf rows made NaN there
                launch_scaled_mm(self._kernel, self._tiles, x2, w_nk, out, s, ws, bias, None, None, is_int8=False,
                                 a_mode=1, a_per_row=False, b_per_col=self._b_per_col, azp_mode=0)
                return out.reshape(*x.shape[:-1], n)
            q, a_mode, per_row = self._q_static(x2, s), 0, False
        elif mode == "token":
            ub = getattr(layer, ub_name, None) if ub_name else None
            if x2.shape[0] <= self.fused_quant_max_m:
                launch_scaled_mm(self._kernel, self._tiles, x2, w_nk, out, ws, ws, bias, None, None, is_int8=False,
                                 a_mode=2, a_per_row=True, b_per_col=self._b_per_col, azp_mode=0, ub=ub)
                return out.reshape(*x.shape[:-1], n)
            q, s = self._q_token(x2, ub)
            a_mode, per_row = 0, True
        else:
            q, s = self._q_tensor(x2)
            a_mode, per_row = 0, False
        launch_scaled_mm(self._kernel, self._tiles, q, w_nk, out, s, ws, bias, None, None, is_int8=False,
                         a_mode=a_mode, a_per_row=per_row, b_per_col=self._b_per_col, azp_mode=0)
        return out.reshape(*x.shape[:-1], n)
