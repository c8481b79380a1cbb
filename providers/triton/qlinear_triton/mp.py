"""TritonW4A16LinearKernel: 4-bit GPTQ / AWQ-style weights x fp16/bf16 activations.

Accepts uint4b8 (symmetric GPTQ) and uint4 + zero points; group sizes -1, 32, 64, 128, 256 or K;
act-order (g_idx), by sorting the weight's K rows by group at load time and gathering x's columns
in the kernel. The compressed-tensors parameters are re-laid once (``repack_*``, pure torch, tested
exactly on CPU).
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types
from qlinear.settings import env_int

from .base import TritonKernelMixin
from .configs import W4A16_SWAP_MAX_M, W4A16_SWAP_MIN_M, SwapTile, fixed_split, is_rocm, swap_split, w4a16_swap_tile
from .w4a16_launch import ONE_BITS, W4A16Launch  # noqa: F401 - ONE_BITS: the kernels' decode constant, named here too

GROUPS = (-1, 32, 64, 128, 256)


def repack_w4(weight_packed: torch.Tensor, k: int) -> torch.Tensor:
    """compressed-tensors int32 [N, K/8] (packed along K) -> int32 [Kp/8, N], Kp = K rounded up to
    128, the kernels' layout (w4a16_kernels): in each 128-row block b, nibble j of word row r holds
    row 128 b + 16 j + r; padded rows hold code 0."""
    if weight_packed.dtype != torch.int32 or weight_packed.dim() != 2:
        raise ValueError(f"weight_packed: expected int32 [N, K/8], got {weight_packed.dtype} {tuple(weight_packed.shape)}")
    n = weight_packed.shape[0]
    kp = -(-k // 128) * 128
    codes = unpack_along(weight_packed, 4, 1)[:, :k].to(torch.int32)
    codes = torch.nn.functional.pad(codes, (0, kp - k))
    blocks = codes.reshape(n, kp // 128, 8, 16)  # [n, b, j, r]
    words = torch.zeros((kp // 128, 16, n), dtype=torch.int32, device=codes.device)
    for j in range(8):
        words |= blocks[:, :, j, :].permute(1, 2, 0) << (4 * j)  # int32 shifts wrap like the packed word
    return words.reshape(kp // 8, n).contiguous()


def permute_k(weight_packed: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the K rows of a K-packed int32 [N, K/8] weight by ``perm`` (row i <- row perm[i])."""
    codes = unpack_along(weight_packed, 4, 1)[:, perm.long()]
    from qlinear.formats.int_pack import pack_along

    return pack_along(codes, 4, 1)


def repack_scales(weight_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N, G] -> [G, N] contiguous (one row per group, N contiguous)."""
    return weight_scale.to(dtype).t().contiguous()


def repack_zero_points(weight_zero_point: torch.Tensor, n: int) -> torch.Tensor:
    """compressed-tensors int32 [N/8, G] (packed along N) -> uint8 [G, N] (one code per byte)."""
    return unpack_along(weight_zero_point, 4, 0)[:n].t().contiguous().to(torch.uint8)


def act_order(g_idx: torch.Tensor, k: int, group: int):
    """g_idx [K] -> (perm, sorted g_idx or None). None means the sorted groups are the contiguous
    k // group blocks (GPTQ act-order always gives that), so the kernel needs no group lookup."""
    gi = g_idx.to(torch.int64)
    perm = torch.argsort(gi, stable=True)
    sorted_g = gi[perm]
    natural = torch.equal(sorted_g, torch.arange(k, device=gi.device) // group)
    return perm.to(torch.int32), (None if natural else sorted_g.to(torch.int32))


class TritonW4A16LinearKernel(W4A16Launch, TritonKernelMixin, MPLinearKernel):
    # Above marlin (50): on the H100 this kernel was the faster of the two at every M measured
    # (docs/gpu-results.md: GEMV at M <= 2, 16-row tiles to 64, dequantize + cuBLAS from 128).
    priority = 55
    allow_split_k = True  # tensor-core tiles split K (configs.w4a16_split)
    # From this many rows on: dequantize the weight to a 16-bit [K, N] buffer (one Triton launch)
    # and run cuBLAS, instead of dequantizing every weight tile once per BM rows. H100, graph us,
    # 64-row tiles vs dense: M=64 27.1 vs 23.0 (4096x4096), 83.4 vs 97.0 (14336x4096); M=1024
    # 148 vs 60 and 567 vs 239. The dense path writes the whole 16-bit weight (4x the int4 bytes),
    # so it pays once the GEMM's own cost dominates.
    dense_min_m = env_int("QLINEAR_TRITON_W4A16_DENSE_MIN_M", 128, minimum=0)
    # The mid-M tensor-core kernels (w4a16_swap_kernels) serve swap_min_m <= M <= swap_max_m where
    # configs.w4a16_swap_tile has a measured tile, ahead of both paths above; swap_max_m = 0 turns
    # them off (the 16-row tiles and dequantize + cuBLAS as before). Not on ROCm.
    swap_min_m = env_int("QLINEAR_TRITON_W4A16_SWAP_MIN_M", W4A16_SWAP_MIN_M, minimum=1)
    swap_max_m = env_int("QLINEAR_TRITON_W4A16_SWAP_MAX_M", W4A16_SWAP_MAX_M, minimum=0)

    @classmethod
    def can_implement(cls, c):
        if c.weight_type not in (scalar_types.uint4b8, scalar_types.uint4):
            return False, f"weight type {c.weight_type.name} is not uint4b8 or uint4 (4-bit only)"
        if c.act_type not in (torch.float16, torch.bfloat16):
            return False, f"activation dtype {c.act_type} is not float16/bfloat16"
        if c.out_type is not None and c.out_type not in (torch.float16, torch.bfloat16, torch.float32):
            return False, f"out_type {c.out_type} is not supported"
        if c.group_size not in GROUPS and c.group_size != c.K:
            return False, f"group_size {c.group_size} is not one of {GROUPS} or K={c.K}"
        if c.N % 8:
            return False, f"N={c.N} is not a multiple of 8"
        if c.K % 8:
            return False, f"K={c.K} is not a multiple of 8"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        w_q, w_s, w_zp, w_gidx = self._get_weight_params(layer)
        k, n = c.K, c.N
        group = c.effective_group_size
        packed = w_q.data
        perm = gsorted = None
        if w_gidx is not None:
            perm, gsorted = act_order(w_gidx.data, k, group)
            packed = permute_k(packed, perm)
        self.replace_parameter(layer, self.w_q_name, repack_w4(packed, k))
        self.replace_parameter(layer, self.w_s_name, repack_scales(w_s.data, c.act_type))
        if w_zp is not None:
            self.replace_parameter(layer, self.w_zp_name, repack_zero_points(w_zp.data, n))
        if w_gidx is not None:
            # the g_idx parameter now holds the K permutation x is gathered through; a g_idx whose
            # sorted groups are not the contiguous k // group blocks also keeps them, sorted
            self.replace_parameter(layer, self.w_gidx_name, perm)
            if gsorted is not None:
                layer.register_buffer("weight_g_idx_sorted", gsorted, persistent=False)
        self._has_perm = w_gidx is not None
        self._has_gsorted = gsorted is not None
        self._zp_const = c.weight_type.bias if w_zp is None else 0
        self._init_launch(packed.device, n, w_s.shape[-1], group)
        from . import w4a16_swap_kernels

        self._swap = w4a16_swap_kernels.w4a16_swap_kernel
        self._wideb = w4a16_swap_kernels.w4a16_wideb_kernel
        self._mid_tiles: dict[int, object] = {}

    def _nk(self):
        return self.config.N, self.config.K

    def _weights(self, layer):
        zp = getattr(layer, self.w_zp_name) if self.w_zp_name else None
        perm = getattr(layer, self.w_gidx_name) if self._has_perm else None
        gsorted = layer.weight_g_idx_sorted if self._has_gsorted else None
        return getattr(layer, self.w_q_name), getattr(layer, self.w_s_name), zp, perm, gsorted

    # ---- mid M: w4a16_swap_kernels ----------------------------------------------------------------
    def pin_tile(self, tile, splits: int | None = None):
        """Pin the tile (tuning sweeps): a configs.SwapTile runs every M through the mid-M kernels (its
        own ``splits``), whatever swap_min_m / swap_max_m / dense_min_m say; a GemvTile or Tile runs
        every M below dense_min_m through the GEMV / tile kernels (``splits`` K slices, None: the
        shipped rule). Returns the kernel."""
        self._pinned = (tile, splits)
        return self

    def _mid_tile(self, m: int):
        if self._pinned is not None:
            return self._pinned[0] if isinstance(self._pinned[0], SwapTile) else None
        if not (self.swap_min_m <= m <= self.swap_max_m) or is_rocm():
            return None
        b = 1 << max(0, (m - 1).bit_length())  # the M bucket (the mid range ends below 1024)
        if b not in self._mid_tiles:
            c = self.config
            self._mid_tiles[b] = w4a16_swap_tile(b, c.N, c.K, self._group, self._sms)  # None: not here
        return self._mid_tiles[b]

    def _apply_mid(self, t: SwapTile, x, x2, qw, s, zp, perm, gsorted, bias, out_dtype):
        """M rows through w4a16_swap_kernel (tiles [BN weight columns, BM rows]) or, for a ``bmajor``
        tile, w4a16_wideb_kernel ([BM rows, BN columns]); K split over program_id(1) into fp32 partials
        summed in order by splitk_reduce_kernel."""
        n, k = self.config.N, self.config.K
        m = x2.shape[0]
        if self._has_perm:  # act-order: x's columns permuted once, as for the tiles
            x2 = x2.index_select(1, perm)
        group = self._group
        spg = 1 if self._has_gsorted else (8 if self._one_scale(k) else group // 16)
        wide = t.wide
        reg = t.reg and not wide and not self._has_gsorted  # REG has no per-row scale lookup
        pair = t.pair and not (wide or reg)
        tiles = -(-m // t.bm) * -(-n // t.bn)
        if t.splits:
            splits, k_split = fixed_split(k, t.splits, 128)
        else:
            splits, k_split = swap_split(tiles, k, self._sms) if self.allow_split_k else (1, k)
        out = torch.empty((m, n), dtype=out_dtype, device=x.device)
        c = out if splits == 1 else torch.empty((splits, m, n), dtype=torch.float32, device=out.device)
        args = (x2, qw, s, zp if zp is not None else s, gsorted, bias if bias is not None else s, c, m, n, k, self._ng,
                x2.stride(0), c.stride(-2), -(-k_split // 128), c.stride(0) if splits > 1 else 0)
        common = dict(GROUP=group, HAS_ZP=zp is not None, ZP_CONST=self._zp_const, IRREG=self._has_gsorted,
                      HAS_BIAS=bias is not None, BM=t.bm, BN=t.bn, SLAB_SCALES=t.slab_scales, num_warps=t.num_warps,
                      num_stages=t.num_stages)
        if t.bmajor:
            self._wideb[(tiles, splits)](*args, ONE_BITS, **common)
        else:
            self._swap[(tiles, splits)](*args, ONE_BITS, SPG=spg, PAIR=pair, REG=reg, MATH32=self._interp, WIDE=wide,
                                        **common)
        if splits > 1:
            self._reduce(self._reduce_kernel, c, out)
        return out.reshape(*x.shape[:-1], n)
