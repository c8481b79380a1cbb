"""TritonInt8ScaledMMLinearKernel: INT8 W8A8, every scheme of the family.

Weights per-tensor or per-channel; activations dynamic per-token or static per-tensor (one fused
quantization kernel from ``quant.py``, then the GEMM), symmetric or asymmetric. Asymmetric activations are corrected exactly in the epilogue with
the integer column sums of the weight (``azp_adj``).
"""

from __future__ import annotations

import torch

from qlinear.kernel import Int8ScaledMMLinearKernel

from .base import TritonKernelMixin, io_dtype_reason, out_dtype_of
from .scaled_mm import QuantInGemm, as_2d, default_tiles, launch_scaled_mm, load_static_input_scale, load_weight_and_scale


class TritonInt8ScaledMMLinearKernel(QuantInGemm, TritonKernelMixin, Int8ScaledMMLinearKernel):
    def handles_non_finite(self, m):
        return self.config.is_static_input_scheme and m <= self.static_fused_max_m

    @classmethod
    def can_implement(cls, c):
        why = io_dtype_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        from . import mm_kernels, quant

        w_name, s_name, is_name, izp_name, adj_name = self.layer_param_names
        c = self.config
        w_nk, self._b_per_col = load_weight_and_scale(self, layer, w_name, s_name, torch.int8)
        n, k = w_nk.shape
        if c.is_static_input_scheme:
            load_static_input_scale(self, layer, is_name, "a static INT8 scheme")
            if not c.input_symmetric:
                zp = getattr(layer, izp_name, None)
                if zp is None:
                    raise ValueError(f"{izp_name}: a static asymmetric INT8 scheme needs an input zero point")
                self.replace_parameter(layer, izp_name, zp.data.reshape(-1)[:1].to(torch.int32).contiguous())
        if not c.input_symmetric:
            adj = getattr(layer, adj_name, None)
            adj = adj.data if adj is not None else w_nk.to(torch.int32).sum(1)
            self.replace_parameter(layer, adj_name, adj.reshape(-1).to(torch.int32).contiguous())
        self._kernel = mm_kernels.scaled_mm_kernel
        self._quant = quant.quant_int8_per_token
        self._quant_static = quant.quant_int8_static
        self._tiles = default_tiles(n, k, w_nk.device)
        self._nk = (n, k)

    def apply_weights(self, layer, x, bias=None):
        w_name, s_name, is_name, izp_name, adj_name = self.layer_param_names
        c = self.config
        n, k = self._nk
        x2 = as_2d(x, k)
        out = torch.empty((x2.shape[0], n), dtype=out_dtype_of(c, x), device=x.device)
        if x2.shape[0] == 0:
            return out.reshape(*x.shape[:-1], n)
        sym = c.input_symmetric
        w_nk = getattr(layer, w_name).t()
        adj = None if sym else getattr(layer, adj_name)
        if c.is_static_input_scheme:
            xs, zp = getattr(layer, is_name), None if sym else getattr(layer, izp_name)
            fused = x2.shape[0] <= self.static_fused_max_m  # quantized in the GEMM, NaN/inf rows made NaN there
            q = x2 if fused else self._quant_static(x2, xs, zp)
            launch_scaled_mm(self._kernel, self._tiles, q, w_nk, out, xs, getattr(layer, s_name), bias, zp, adj,
                             is_int8=True, a_mode=1 if fused else 0, a_per_row=False, b_per_col=self._b_per_col,
                             azp_mode=0 if sym else 1)
        elif x2.shape[0] <= self.fused_quant_max_m:
            ws = getattr(layer, s_name)
            launch_scaled_mm(self._kernel, self._tiles, x2, w_nk, out, ws, ws, bias, None, adj, is_int8=True,
                             a_mode=2, a_per_row=True, b_per_col=self._b_per_col, azp_mode=0 if sym else 2)
        else:
            q, s, zp = self._quant(x2, sym)
            launch_scaled_mm(self._kernel, self._tiles, q, w_nk, out, s, getattr(layer, s_name), bias, zp, adj,
                             is_int8=True, a_mode=0, a_per_row=True, b_per_col=self._b_per_col,
                             azp_mode=0 if sym else 2)
        return out.reshape(*x.shape[:-1], n)
