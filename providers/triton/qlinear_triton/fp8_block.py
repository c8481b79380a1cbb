"""TritonFp8BlockScaledMMLinearKernel: block-scaled FP8 (1 x 128 activation groups quantized by a
fused Triton kernel, 128 x 128 weight blocks), DeepSeek-V3 style."""

from __future__ import annotations

import torch

from qlinear.kernel import Fp8BlockScaledMMLinearKernel, relay_block_weight

from .base import TritonKernelMixin, io_dtype_reason, out_dtype_of
from .configs import block_fp8_tile
from .scaled_mm import TileCache, as_2d


class TritonFp8BlockScaledMMLinearKernel(TritonKernelMixin, Fp8BlockScaledMMLinearKernel):
    needs_fp8 = True
    min_capability = 89
    apply_input_quant = True

    @classmethod
    def can_implement(cls, c):
        why = cls.deepseek_layout_reason(c)
        if why:
            return False, why
        why = io_dtype_reason(c)
        return why is None, why

    def process_weights_after_loading(self, layer):
        from . import mm_kernels, quant

        self._s_name, (n, k) = relay_block_weight(self, layer, self.config.weight_shape)
        self._kernel = mm_kernels.block_fp8_mm_kernel
        self._quant = quant.quant_fp8_per_group
        self._tiles = TileCache(block_fp8_tile, n, k, layer.weight.device)
        self._nk = (n, k)

    def apply_weights(self, layer, x, bias=None):
        n, k = self._nk
        x2 = as_2d(x, k)
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=out_dtype_of(self.config, x), device=x.device)
        if m == 0:
            return out.reshape(*x.shape[:-1], n)
        if x2.dtype == torch.float8_e4m3fn:  # quantized upstream with one per-tensor input_scale
            s = getattr(layer, "input_scale", None)
            if s is None:
                raise ValueError("x.dtype: an FP8 input needs the layer's input_scale")
            q, s_m, s_g = x2, 0, 0
        else:
            q, s = self._quant(x2, 128)
            s_m, s_g = s.stride(0), s.stride(1)
        ws = getattr(layer, self._s_name)
        t = self._tiles(m)
        grid = (-(-m // t.bm) * -(-n // t.bn),)
        self._kernel[grid](q, layer.weight, out, s, ws, bias if bias is not None else ws, m, n, k,
                           q.stride(0), layer.weight.stride(0), out.stride(0), out.stride(1), s_m, s_g,
                           ws.stride(0), ws.stride(1), HAS_BIAS=bias is not None, BM=t.bm, BN=t.bn, BK=128,
                           GROUP_N=128, GROUP_M=t.group_m, EVEN_K=k % 128 == 0, num_warps=t.num_warps,
                           num_stages=t.num_stages)
        return out.reshape(*x.shape[:-1], n)
