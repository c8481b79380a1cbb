"""INT8 W8A8 on AMX (``_tile_dpbssd``), activation quantization in the same C++ call sequence.

Every INT8 scheme: per-tensor or per-channel weight scales; activations dynamic per row or static
per tensor; symmetric, or asymmetric with the zero point folded into the epilogue as
``acc - zp * colsum(W)``. The weight [K, N] is re-laid once into the VNNI-4 tile layout
(``pack.pack_int8_vnni4``), K padded to 64 and N to 32 with zeros.

Up to ``VEC_MAX_M`` rows the C++ kernel multiplies with AVX512-VNNI vectors instead of AMX tiles
(one tile's fixed costs buy nothing for a few rows, and a weight tile row is already a VNNI
operand); the int32 dot products are exact either way, so the two paths give identical results.
"""

from __future__ import annotations

import torch

from qlinear.kernel import Int8ScaledMMLinearKernel

from . import hugepages, pack
from .common import PRIO, CpuKernelMixin, as_2d, bias_f32, new_out, out_dtype

# rows up to which the VNNI vector path runs instead of AMX tiles
# (measured: docs/cpu-results.md, "INT8 W8A8: where the time went")
VEC_MAX_M = 2


class CpuAmxInt8ScaledMMLinearKernel(CpuKernelMixin, Int8ScaledMMLinearKernel):
    """INT8 W8A8, any scheme; bf16 / fp16 / fp32 activations."""

    priority = PRIO
    batch_invariant = False

    @classmethod
    def can_implement(cls, c):
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to lay the weight out at load time"
        if c.input_dtype not in (torch.bfloat16, torch.float16, torch.float32):
            return False, f"input_dtype {c.input_dtype} is not bf16/fp16/fp32"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        self._ext = self.ext()
        w_name, s_name, is_name, izp_name, azp_name = self.layer_param_names
        n, k = c.weight_shape
        w = getattr(layer, w_name)
        if tuple(w.shape) != (k, n) or w.dtype != torch.int8:
            raise ValueError(f"{w_name}: expected int8 [K={k}, N={n}], got {w.dtype} {tuple(w.shape)}")
        self.k_pad = pack.round_up(k, 64)
        n_pad = pack.round_up(n, pack.NB)
        ws = getattr(layer, s_name).float().reshape(-1)
        if ws.numel() not in (1, n):
            raise ValueError(f"{s_name}: expected 1 or N={n} scales, got shape {tuple(getattr(layer, s_name).shape)}")
        sw = pack.pad_cols(ws.expand(n), n_pad)
        colsum = None
        if not c.input_symmetric:
            adj = getattr(layer, azp_name, None)
            if adj is None:
                adj = w.to(torch.int32).sum(0)
            if adj.numel() != n:
                raise ValueError(f"{azp_name}: expected N={n} column sums, got shape {tuple(adj.shape)}")
            colsum = pack.pad_cols(adj.reshape(-1), n_pad)
        self.static_scale = self.static_zp = None
        if c.is_static_input_scheme:
            xs = getattr(layer, is_name, None)
            if xs is None or xs.numel() != 1:
                raise ValueError(f"{is_name}: a static scheme needs a one-element input scale")
            self.static_scale = xs.float().reshape(1).contiguous()
            if not c.input_symmetric:
                zp = getattr(layer, izp_name, None)
                if zp is None or zp.numel() != 1:
                    raise ValueError(f"{izp_name}: a static asymmetric scheme needs a one-element zero point")
                self.static_zp = zp.to(torch.int32).reshape(1).contiguous()
        # 128 * colsum(W), int32: the VNNI path multiplies (q + 128) by W and takes this back off
        # (int32 throughout, as the kernel adds it)
        self.comp = torch.nn.functional.pad(w.to(torch.int32).sum(0) * 128, (0, n_pad - n)).to(torch.int32).contiguous()
        self.replace_parameter(layer, w_name, hugepages.place(pack.pack_int8_vnni4(w.t(), self.k_pad)))
        self.replace_parameter(layer, s_name, sw)
        if colsum is not None:
            self.replace_parameter(layer, azp_name, colsum)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        w_name, s_name, _, _, azp_name = self.layer_param_names
        n = c.weight_shape[0]
        lead = x.shape[:-1]
        x2 = as_2d(x)
        m = x2.shape[0]
        if m == 0:  # the C++ kernels take M >= 1
            return new_out(0, n, out_dtype(c, x)).reshape(*lead, n)
        return self.run(layer, x2, bias, VEC_MAX_M).reshape(*lead, n)

    def run(self, layer, x2, bias, vec_max_m):
        """x2 [M >= 1, K] -> out [M, N]; ``vec_max_m`` picks the path (tests compare both)."""
        c = self.config
        w_name, s_name, _, _, azp_name = self.layer_param_names
        m = x2.shape[0]
        # A-tile layout [ceil(M/16), Kp/64, min(M, 16), 64]; a dynamic row with NaN/inf gets scale NaN
        q = torch.empty((m + 15) // 16, self.k_pad // 64, min(m, 16), 64, dtype=torch.int8)
        sx = torch.empty(m, dtype=torch.float32)
        zp = torch.empty(m, dtype=torch.int32)
        self._ext.quantize_i8(x2, q, sx, zp, c.input_symmetric, self.static_scale, self.static_zp)
        out = new_out(m, c.weight_shape[0], out_dtype(c, x2))
        colsum = None if c.input_symmetric else getattr(layer, azp_name)
        self._ext.gemm_i8(q, sx, zp, getattr(layer, w_name), getattr(layer, s_name), self.comp, colsum,
                          bias_f32(bias), out, vec_max_m)
        return out
