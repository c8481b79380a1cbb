"""CutlassW4A8LinearKernel: int4 weights x FP8 activations on Hopper's FP8 tensor cores.

The activation is quantized per token to E4M3 (one launch, ``act_quant.cu``); the GEMM
(``csrc/w4a8.cuh``) is CUTLASS's sm90 mixed-input mainloop in its lookup-table mode: the int4 weight,
re-laid once at load (``w4a8_layout``), is turned into E4M3 values e4m3(q * s_g) by ``prmt`` lookups
in a per-group table and fed to FP8 wgmma; the channel and token scales and the bias are applied in
the epilogue. Half the weight bytes of FP8 W8A8 and twice the tensor-core rate of W4A16.

Accepts groups that are a multiple of 128 (the K tile) or the whole of K (per channel), N a multiple
of 16, K of 128, bf16 / fp16 activations and outputs. Refused with a reason otherwise.
"""

from __future__ import annotations

import torch

from qlinear.kernel import W4A8LinearKernel

from . import configs
from .gates import CutlassKernelMixin
from .w4a8_layout import K_TILE, W4A8_ATOM, scale_tables, weight_int4

PRIORITY = 50  # the only W4A8 GEMM besides emulation
DTYPES = (torch.bfloat16, torch.float16)


class CutlassW4A8LinearKernel(CutlassKernelMixin, W4A8LinearKernel):
    priority = PRIORITY
    notes = "JIT-compiles its CUDA extension (CUTLASS int4 x FP8 mixed-input, sm_90a) when the first layer loads"

    @classmethod
    def can_implement(cls, c):
        if c.input_dtype not in DTYPES:
            return False, f"input dtype {c.input_dtype} is not bfloat16/float16"
        if c.out_dtype is not None and c.out_dtype not in DTYPES:
            return False, f"out_dtype {c.out_dtype} is not bfloat16/float16"
        n, k = c.weight_shape
        if n % W4A8_ATOM.rows:
            return False, f"N={n} must be a multiple of {W4A8_ATOM.rows} (the int4 reorder atom and 16-byte output rows)"
        if k % K_TILE:
            return False, f"K={k} must be a multiple of {K_TILE} (the K tile)"
        g = c.effective_group_size
        if g != k and g % K_TILE:
            return False, f"group_size {c.group_size} must be a multiple of {K_TILE} (the K tile) or K={k}"
        return True, None

    def process_weights_after_loading(self, layer):
        from .build import load_w4a8_extension

        c = self.config
        n, k = c.weight_shape
        g = c.effective_group_size
        w_q, w_s, w_c = layer.weight_packed, layer.weight_scale, layer.weight_chan_scale
        if tuple(w_q.shape) != (n, k // 8):
            raise ValueError(f"weight_packed.shape: expected [{n}, {k // 8}], got {tuple(w_q.shape)}")
        if tuple(w_s.shape) != (n, k // g):
            raise ValueError(f"weight_scale.shape: expected [{n}, {k // g}], got {tuple(w_s.shape)}")
        if w_c.numel() != n:
            raise ValueError(f"weight_chan_scale.shape: expected [{n}, 1], got {tuple(w_c.shape)}")
        self.replace_parameter(layer, "weight_packed", weight_int4(w_q.data))
        self.replace_parameter(layer, "weight_scale", scale_tables(w_s.data))
        self.replace_parameter(layer, "weight_chan_scale", w_c.data.to(torch.float32).reshape(n).contiguous())
        self._group = g
        self._ext = load_w4a8_extension()  # build here, never in apply

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k = c.weight_shape
        out_dt = c.out_dtype or x.dtype
        x2 = x.reshape(-1, k)
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:  # the quantizer's 16-byte loads
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=out_dt, device=x.device)
        if m:
            xq = torch.empty((m, k), dtype=torch.float8_e4m3fn, device=x.device)
            s = torch.empty((m,), dtype=torch.float32, device=x.device)
            self._ext.quant_fp8_per_token(x2, xq, s)
            if bias is not None:
                bias = bias.to(out_dt).contiguous()
            tile = configs.w4a8_forced()
            self._ext.w4a8_mm(out, xq, s, layer.weight_packed, layer.weight_scale, layer.weight_chan_scale, bias,
                              self._group, configs.w4a8_tile_for(m, n) if tile is None else tile)
        return out.reshape(*x.shape[:-1], n)
