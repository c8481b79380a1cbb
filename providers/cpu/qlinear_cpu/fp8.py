"""FP8 E4M3 weights on AMX: per-tensor, per-channel and 128x128-block scales.

No CPU multiplies FP8, so these are W8A16 kernels (as vLLM's CPU FP8 path is): the activation stays
bf16 (fp16 / fp32 activations are rounded to bf16) and is never quantized to FP8; the weight bytes
are expanded exactly to bf16 tiles (``expand_fp8_tile``: a 128-entry byte-table lookup, ``pack.pack_fp8``) and the weight scale is applied to the fp32
tile result, once at the end (per tensor / channel) or per 128-deep K group (blocks). Being
weight-only, ``quantizes_activation`` is False: the conformance kit compares against the reference
with the activation unquantized. A static ``input_scale`` is accepted and not needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.kernel import Fp8BlockScaledMMLinearKernel, FP8ScaledMMLinearKernel

from . import hugepages, pack
from .common import PRIO, CpuKernelMixin, as_2d, bias_f32, new_out, out_dtype

FP8 = torch.float8_e4m3fn
W_FP8 = 1
# rows up to which the weights take the AVX512-BF16 vector path (the table expansion feeding
# vdpbf16ps from registers) instead of AMX tiles, which store every expanded tile and load it back
VEC_MAX_M = 4


def _check_act(c):
    if c.input_dtype not in (torch.bfloat16, torch.float16, torch.float32):
        return f"input_dtype {c.input_dtype} is not bf16/fp16/fp32"
    return None


def _run(kernel, layer, w_name, x, bias, vec_max_m=None):
    c = kernel.config
    n, k = c.weight_shape
    lead = x.shape[:-1]
    x2 = as_2d(x)
    if x2.shape[0] == 0:  # the C++ kernels take M >= 1
        return new_out(0, n, out_dtype(c, x)).reshape(*lead, n)
    if x2.dtype == FP8:
        raise ValueError("x.dtype: the cpu FP8 kernels take the 16-bit activation, not a pre-quantized fp8 one")
    if x2.dtype != torch.bfloat16:
        x2 = x2.to(torch.bfloat16)
    if kernel.k_pad != k:
        x2 = F.pad(x2, (0, kernel.k_pad - k))
    out = new_out(x2.shape[0], n, out_dtype(c, x))
    kernel._ext.gemm_dq(x2, getattr(layer, w_name), W_FP8, kernel.group, kernel.sw, None, None, None, bias_f32(bias), out,
                        VEC_MAX_M if vec_max_m is None else vec_max_m)
    return out.reshape(*lead, n)


class CpuAmxFP8ScaledMMLinearKernel(CpuKernelMixin, FP8ScaledMMLinearKernel):
    """FP8 weights with per-tensor or per-channel scales (W8A16 on AMX)."""

    priority = PRIO
    quantizes_activation = False

    @classmethod
    def can_implement(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is the fp8_block family"
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to lay the weight out at load time"
        return (False, why) if (why := _check_act(c)) else (True, None)

    def process_weights_after_loading(self, layer):
        c = self.config
        self._ext = self.ext()
        w_name, s_name, _, _ = self.layer_param_names
        n, k = c.weight_shape
        w = getattr(layer, w_name)
        if tuple(w.shape) != (k, n) or w.dtype != FP8:
            raise ValueError(f"{w_name}: expected float8_e4m3fn [K={k}, N={n}], got {w.dtype} {tuple(w.shape)}")
        ws = getattr(layer, s_name).float().reshape(-1)
        if ws.numel() not in (1, n):
            raise ValueError(f"{s_name}: expected 1 or N={n} scales, got shape {tuple(getattr(layer, s_name).shape)}")
        self.k_pad = pack.round_up(k, 32)
        self.group = pack.split_group(self.k_pad)  # one scale for all of K, applied per sub-group
        sw = pack.repeat_groups(ws.expand(n).reshape(1, n), self.k_pad // self.group)
        self.sw = pack.block_scales(sw, pack.round_up(n, pack.NB))
        self.replace_parameter(layer, w_name, hugepages.place(pack.pack_fp8(w.t(), self.k_pad)))
        self.replace_parameter(layer, s_name, self.sw)

    def apply_weights(self, layer, x, bias=None):
        return _run(self, layer, self.layer_param_names[0], x, bias)


class CpuAmxFp8BlockScaledMMLinearKernel(CpuKernelMixin, Fp8BlockScaledMMLinearKernel):
    """FP8 weights with 128x128 block scales (W8A16 on AMX; the activation is not quantized)."""

    priority = PRIO
    quantizes_activation = False
    apply_input_quant = False

    @classmethod
    def can_implement(cls, c):
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to lay the weight out at load time"
        bn, bk = c.weight_block
        if bk % 32 or bn % 32:
            return False, f"weight block {bn}x{bk}: both sides must be multiples of 32"
        return (False, why) if (why := _check_act(c)) else (True, None)

    def process_weights_after_loading(self, layer):
        c = self.config
        self._ext = self.ext()
        n, k = c.weight_shape
        bn, bk = c.weight_block
        w, s = layer.weight, layer.weight_scale_inv
        if tuple(w.shape) != (n, k) or w.dtype != FP8:
            raise ValueError(f"weight: expected float8_e4m3fn [N={n}, K={k}], got {w.dtype} {tuple(w.shape)}")
        gk, gn = -(-k // bk), -(-n // bn)
        if tuple(s.shape) != (gn, gk):
            raise ValueError(f"weight_scale_inv: expected [{gn}, {gk}], got {tuple(s.shape)}")
        self.k_pad = gk * bk
        self.group = bk
        sw = s.float().repeat_interleave(bn, 0)[:n].t()  # [K groups, N]
        self.sw = pack.block_scales(sw, pack.round_up(n, pack.NB))
        self.replace_parameter(layer, "weight", hugepages.place(pack.pack_fp8(w, self.k_pad)))
        self.replace_parameter(layer, "weight_scale_inv", self.sw)

    def apply_weights(self, layer, x, bias=None):
        return _run(self, layer, "weight", x, bias)
