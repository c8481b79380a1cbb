"""CutlassW4A16LinearKernel: GPTQ / AWQ 4-bit weights x bf16 / fp16 activations on Hopper tensor cores;
CutlassW8A16LinearKernel: the same GEMM on GPTQ 8-bit weights (uint8b128).

CUTLASS's sm90 mixed-input GEMM (``csrc/w4a16.cuh``): the int4 weight is re-laid once at load
(``w4a16_layout``: CUTLASS's shuffled order, codes shifted to int4) so each thread loads its 8 values
of a k-block as one word and converts them to 16-bit with lop3 in registers, scales them per group
(and adds the AWQ zero term) and feeds wgmma; no dequantized weight is ever written. Strongest from
M = 64 up, where the GEMV-style kernels run out of steam (the Machete idea); seven tiles chosen per
call by M and N (``configs.w4a16_tile_for``). 8-bit codes take the same path with CUTLASS's int8
order and converter (``bits = 8``), in an extension of their own.

Accepts uint4b8 (GPTQ, symmetric) and uint4 + zero points (AWQ); groups that are a multiple of 64
(the K tile) or the whole of K (per channel); act-order (g_idx) by sorting the weight's K rows by
group at load and permuting x's columns per call (one gather). Refused with a reason: other weight
types, group 32, an act-order row slice (its groups are not contiguous), N not a multiple of 16 or
K of 64, an output dtype other than the activation's.
"""

from __future__ import annotations

import torch

from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from . import configs
from .gates import CutlassKernelMixin
from .w4a16_layout import K_TILE, act_order_perm, scale_table, weight_int4, zero_table

# Below triton (55), marlin (50) and fbgemm (25) for the MP family until the H200 tables say where it
# wins (a measured table decides per M, ahead of priority).
PRIORITY = 20
ACT_DTYPES = (torch.bfloat16, torch.float16)


class CutlassW4A16LinearKernel(CutlassKernelMixin, MPLinearKernel):
    priority = PRIORITY
    notes = "JIT-compiles its CUDA extension (CUTLASS mixed-input, sm_90a) when the first layer loads"
    bits = 4  # code width; the W8A16 subclass runs the same GEMM on 8-bit codes
    table_version = 1  # 1: seven tiles chosen by M and N (was three by M): rows timed before are stale
    extension = "w4a16"  # build.EXTENSIONS "<extension>-<bf16|fp16>"

    @classmethod
    def _check_weight_type(cls, c):
        if c.weight_type not in (scalar_types.uint4b8, scalar_types.uint4):
            return f"weight type {c.weight_type.name} is not 4-bit (uint4b8, or uint4 with zero points)"
        return None

    @classmethod
    def can_implement(cls, c):
        why = cls._check_weight_type(c)
        if why:
            return False, why
        if c.act_type not in ACT_DTYPES:
            return False, f"activation dtype {c.act_type} is not bfloat16/float16"
        if c.out_type is not None and c.out_type != c.act_type:
            return False, f"out_type {c.out_type} differs from the activation dtype (the epilogue writes {c.act_type})"
        n, k = c.N, c.K
        if n % 16:
            return False, f"N={n} must be a multiple of 16 (the int4 reorder atom and 16-byte output rows)"
        if k % K_TILE:
            return False, f"K={k} must be a multiple of {K_TILE} (the K tile)"
        g = c.effective_group_size
        if g != k and g % K_TILE:
            return False, f"group_size {c.group_size} must be a multiple of {K_TILE} (the K tile) or K={k}"
        if c.has_g_idx and not c.is_k_full:
            return False, "act-order row slice: its groups are not contiguous K blocks"
        return True, None

    def process_weights_after_loading(self, layer):
        from .build import load

        c = self.config
        w_q, w_s, w_zp, w_gidx = self._get_weight_params(layer)
        n, k, g = c.N, c.K, c.effective_group_size
        if tuple(w_q.shape) != (n, k * self.bits // 32):
            raise ValueError(f"{self.w_q_name}.shape: expected [{n}, {k * self.bits // 32}], got {tuple(w_q.shape)}")
        if tuple(w_s.shape) != (n, k // g):
            raise ValueError(f"{self.w_s_name}.shape: expected [{n}, {k // g}], got {tuple(w_s.shape)}")
        perm = None
        if w_gidx is not None:
            perm = act_order_perm(w_gidx.data, k, g)
            # the g_idx parameter now holds the K permutation x is gathered through, once per call
            self.replace_parameter(layer, self.w_gidx_name, perm)
        self.replace_parameter(layer, self.w_q_name, weight_int4(w_q.data, perm, bits=self.bits))
        if w_zp is not None:
            self.replace_parameter(layer, self.w_zp_name, zero_table(w_zp.data, w_s.data, c.act_type))
        self.replace_parameter(layer, self.w_s_name, scale_table(w_s.data, c.act_type))
        self._group = g
        act = "bf16" if c.act_type == torch.bfloat16 else "fp16"
        self._ext = load(f"{self.extension}-{act}")  # build here (only this dtype's GEMMs), never in apply
        self._mm = getattr(self._ext, f"{self.extension}_mm")

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k = c.N, c.K
        x2 = x.reshape(-1, k)
        if self.w_gidx_name is not None:
            x2 = x2.index_select(1, getattr(layer, self.w_gidx_name))  # act-order: K in the weight's sorted order
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=c.act_type, device=x.device)
        if m:
            zero = getattr(layer, self.w_zp_name) if self.w_zp_name else None
            if bias is not None:
                bias = bias.to(c.act_type).contiguous()
            tile = configs.w4a16_forced()
            self._mm(out, x2, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name), zero, bias,
                     self._group, configs.w4a16_tile_for(m, n) if tile is None else tile)
        return out.reshape(*x.shape[:-1], n)


class CutlassW8A16LinearKernel(CutlassW4A16LinearKernel):
    """GPTQ 8-bit weights (uint8b128, symmetric) x bf16 / fp16 activations: the same mixed-input GEMM
    and tiles on int8 codes (``Int8Weight`` in ``csrc/w4a16.cuh``, CUTLASS's int8 -> 16-bit lop3
    converter), its own extension (``w8a16``). Zero points (uint8) are refused."""

    bits = 8
    extension = "w8a16"

    @classmethod
    def _check_weight_type(cls, c):
        if c.weight_type != scalar_types.uint8b128:
            return f"weight type {c.weight_type.name} is not uint8b128 (8-bit GPTQ, symmetric)"
        return None
