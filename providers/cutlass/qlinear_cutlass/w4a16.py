"""CutlassW4A16LinearKernel: GPTQ / AWQ 4-bit weights x bf16 / fp16 activations on Hopper tensor cores;
CutlassW8A16LinearKernel: the same GEMM on GPTQ 8-bit weights (uint8b128).

CUTLASS's sm90 mixed-input GEMM (``csrc/w4a16.cuh``): the int4 weight is re-laid once at load
(``w4a16_layout``: CUTLASS's shuffled order, codes shifted to int4) so each thread loads its 8 values
of a k-block as one word and converts them to 16-bit with lop3 in registers, scales them per group
(and adds the AWQ zero term) and feeds wgmma; no dequantized weight is ever written. Strongest from
M = 64 up, where the GEMV-style kernels run out of steam (the Machete idea); seven tiles chosen per
call by M and N (``configs.w4a16_tile_for``). Up to M = 16 the same weight feeds a decode kernel
instead (``csrc/w4a16_decode.cuh``: the reorder atom's word ``lane`` is lane's mma.sync A fragment,
so the weight streams from global memory straight into the mma at the memory floor's pace), so one
weight copy serves token generation and prefill. 8-bit codes (``bits = 8``) take the same two
kernels on CUTLASS's int8 order, in an extension of their own.

Accepts uint4b8 (GPTQ, symmetric) and uint4 + zero points (AWQ); groups that are a multiple of 64
(the K tile) or the whole of K (per channel); act-order (g_idx) by sorting the weight's K rows by
group at load and permuting x's columns per call (one gather: our kernel up to M = 256, index_select
above). Refused with a reason: other weight types, group 32, an act-order row slice (its groups are
not contiguous), N not a multiple of 16 or K of 64, an output dtype other than the activation's.
"""

from __future__ import annotations

import functools

import torch

from qlinear.kernel import MPLinearKernel
from qlinear.platform import cuda_has_pdl, cuda_sm_count
from qlinear.scalar_type import scalar_types
from qlinear.streams import split_k_workspace

from . import configs
from .gates import CutlassKernelMixin
from .w4a16_layout import K_TILE, act_order_perm, gather_index, scale_table, weight_int4, zero_table

# Below triton (55), marlin (50) and fbgemm (25) for the MP family until the H200 tables say where it
# wins (a measured table decides per M, ahead of priority).
PRIORITY = 20
ACT_DTYPES = (torch.bfloat16, torch.float16)


decode_workspace = split_k_workspace  # the decode kernel's split-K planes and tile counters, per (device, stream)


def checked_decode(raw, out, x, w, scale, zero, bias, ws, counters, group: int, splits: int = 0, warps: int = 0,
                   pdl: bool = True, rows: int = 0, cluster: bool = True, bits: int = 4) -> None:
    """The decode binding (``w4a16_decode`` / ``w8a16_decode``, ``bits``-bit codes) with its launch knobs
    pinned (``splits`` 0 = one wave's worth, ``warps`` 0 / 4 / 8, ``pdl``, ``rows`` 0 / 1 / 2 eight-row
    blocks of x a block, ``cluster`` False = K slices always added through the workspace), for sweeps
    and tests; what it cannot take is refused here with a ValueError naming the field (a refusal raised
    inside the extension has taken the whole process down on the H200 instead)."""
    m, k = x.shape
    n = out.shape[-1]
    if not configs.w4a16_decode_applies(m, n, k, group, bits):
        raise ValueError(f"x, out: the decode kernel takes 1 <= M <= 16, N a multiple of {configs.DECODE_TILE_N}, K of "
                         f"{configs.decode_chunk_k(bits)} and groups of whole 64-k blocks; got M={m} N={n} K={k} group={group}")
    if warps not in (0, 4, 8) or splits < 0 or rows not in (0, 1, 2):
        raise ValueError(f"warps: expected 0, 4 or 8 (got {warps}); splits: expected >= 0 (got {splits}); "
                         f"rows: expected 0, 1 or 2 (got {rows})")
    if bits == 8 and zero is not None:
        raise ValueError("zero: the 8-bit decode kernel takes symmetric codes only")
    if ws.dtype != torch.float32 or not ws.is_contiguous() or ws.device != x.device:
        raise ValueError(f"ws: expected a contiguous float32 tensor on {x.device}, got {ws.dtype} on {ws.device}")
    if counters.dtype != torch.int32 or not counters.is_contiguous() or counters.device != x.device:
        raise ValueError(f"counters: expected a contiguous int32 tensor on {x.device}, got {counters.dtype} on {counters.device}")
    raw(out, x, w, scale, zero, bias, ws, counters, group, splits, warps, pdl, rows, cluster)


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
            self.replace_parameter(layer, self.w_gidx_name, gather_index(perm))
        self.replace_parameter(layer, self.w_q_name, weight_int4(w_q.data, perm, bits=self.bits))
        if w_zp is not None:
            self.replace_parameter(layer, self.w_zp_name, zero_table(w_zp.data, w_s.data, c.act_type))
        self.replace_parameter(layer, self.w_s_name, scale_table(w_s.data, c.act_type))
        self._group = g
        act = "bf16" if c.act_type == torch.bfloat16 else "fp16"
        self._ext = load(f"{self.extension}-{act}")  # build here (only this dtype's GEMMs), never in apply
        self._mm = getattr(self._ext, f"{self.extension}_mm")
        raw = getattr(self._ext, f"{self.extension}_decode", None)
        self._decode_raw = raw  # apply's path: shapes already known good
        self._decode = functools.partial(checked_decode, raw, bits=self.bits) if raw is not None else None  # sweeps, tests
        # the rows up to which a call takes the decode kernel, settled here (N, K, the group are fixed): 0 = never
        takes = raw is not None and configs.w4a16_decode_applies(1, n, k, g, self.bits)
        self._decode_max_m = configs.w4a16_decode_max_m(n, k, self.bits) if takes else 0
        # the device's facts the launches need, settled here too (the CPU tests' stand-in: no PDL, one SM)
        dev = getattr(layer, self.w_q_name).device
        cuda = dev.type == "cuda"
        self._pdl = bool(configs.PDL) and cuda and cuda_has_pdl(dev)
        self._sm_count = cuda_sm_count(dev) if cuda else 1

    def _gather(self, x2, layer):
        """Act-order: x's columns in the weight's sorted K order through our kernels (csrc/act_order_gather.cuh,
        PDL-launched: at decode sizes the decode kernel's first weight loads overlap the gather): a thread
        per element for few rows, blocks per row staged in shared memory from
        configs.W4A16_GATHER_STAGED_MIN_M rows; index_select only past K = 65536 (int64 indices)."""
        perm = getattr(layer, self.w_gidx_name)
        if perm.dtype != torch.int16:
            return x2.index_select(1, perm)
        xg = torch.empty(x2.shape, dtype=x2.dtype, device=x2.device)
        self._ext.w4a16_gather(xg, x2, perm, self._pdl, x2.shape[0] >= configs.W4A16_GATHER_STAGED_MIN_M)
        return xg

    def _run_decode(self, out, x2, layer, zero, bias) -> None:
        """M <= 16: the decode kernel (csrc/w4a16_decode.cuh) on the same weight, split-K workspace per
        stream (x already gathered for act-order)."""
        c = self.config
        m, n, k = x2.shape[0], c.N, c.K
        planes = configs.w4a16_decode_planes(m, n, k, self._sm_count, self.bits)
        ws, counters = decode_workspace(x2.device, planes * m * n, 2 * n // configs.DECODE_TILE_N)
        self._decode_raw(out, x2, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name), zero, bias, ws, counters,
                         self._group, 0, 0, self._pdl, 0, True)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k = c.N, c.K
        x2 = x.reshape(-1, k)
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=c.act_type, device=x.device)
        if not m:
            return out.reshape(*x.shape[:-1], n)
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        if self.w_gidx_name is not None:  # act-order: K in the weight's sorted order (contiguous, aligned)
            x2 = self._gather(x2, layer)
        zero = getattr(layer, self.w_zp_name) if self.w_zp_name else None
        if bias is not None:
            bias = bias.to(c.act_type).contiguous()
        if m <= self._decode_max_m:
            self._run_decode(out, x2, layer, zero, bias)
        else:
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
