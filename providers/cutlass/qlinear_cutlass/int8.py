"""CutlassInt8ScaledMMLinearKernel: INT8 W8A8 on Hopper, every scheme of the family.

Weights per-tensor or per-channel; activations dynamic per-token or static per-tensor, symmetric or
asymmetric (one quantization launch, then one CUTLASS GEMM). The asymmetric correction is exact
integer arithmetic in the epilogue: ``x @ W = s_x * (q - zp) @ W = s_x * (q @ W - zp * azp_adj)`` with
``azp_adj`` the weight's int32 column sums, so ``out = a_s[m] * (w_s[n] * (acc - zp[m] * adj[n])) + bias[n]``.
"""

from __future__ import annotations

import torch

from qlinear.kernel import Int8ScaledMMLinearKernel

from .scaled_mm import CutlassW8A8Mixin, as_rows, column_sums, flat_scale, one_float, one_int, weight_nk


class CutlassInt8ScaledMMLinearKernel(CutlassW8A8Mixin, Int8ScaledMMLinearKernel):
    @classmethod
    def can_implement(cls, c):
        why = cls.shape_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        from .build import load_extension

        w_name, s_name, is_name, izp_name, adj_name = self.layer_param_names
        c = self.config
        w_nk = weight_nk(getattr(layer, w_name).data, torch.int8, w_name)
        n = w_nk.shape[0]
        self.replace_parameter(layer, w_name, w_nk.t())
        self.replace_parameter(layer, s_name, flat_scale(getattr(layer, s_name, None), n, s_name,
                                                         getattr(layer, "logical_widths", None)))
        if c.is_static_input_scheme:
            self.replace_parameter(layer, is_name, one_float(getattr(layer, is_name, None), is_name, "a static INT8 scheme"))
            if not c.input_symmetric:
                self.replace_parameter(layer, izp_name, one_int(getattr(layer, izp_name, None), izp_name,
                                                                "a static asymmetric INT8 scheme"))
        if not c.input_symmetric:
            self.replace_parameter(layer, adj_name, column_sums(getattr(layer, adj_name, None), w_nk, adj_name))
        self._nk = (n, w_nk.shape[1])
        self._ext = load_extension()  # build here, never in apply

    def apply_weights(self, layer, x, bias=None):
        w_name, s_name, is_name, izp_name, adj_name = self.layer_param_names
        c = self.config
        n, k = self._nk
        lead = x.shape[:-1]
        x2 = as_rows(x, k)
        m = x2.shape[0]
        q = torch.empty((m, k), dtype=torch.int8, device=x2.device)
        zp = None
        if c.is_static_input_scheme:
            s = getattr(layer, is_name)
            zp = None if c.input_symmetric else getattr(layer, izp_name)
            self._ext.quant_static(x2, q, s, zp)
        else:
            s = torch.empty(m, dtype=torch.float32, device=x2.device)
            if not c.input_symmetric:
                zp = torch.empty(m, dtype=torch.int32, device=x2.device)
            self._ext.quant_per_token(x2, q, s, zp, None)
        adj = None if c.input_symmetric else getattr(layer, adj_name)
        out = self._launch(q, getattr(layer, w_name).t(), s, getattr(layer, s_name), bias, zp, adj, self._out_dtype(x), n)
        return out.reshape(*lead, n)
