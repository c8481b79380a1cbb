"""The per-M dispatch of the W4A16 kernels (``w4a16_kernels``), shared by the GPTQ / AWQ kernel
(``mp``) and the FP4 weight-only kernels (``fp4``): decode GEMV (in-kernel split-K), tensor-core
tiles with split-K (a reduce launch), or dequantize to a 16-bit [K, N] buffer + cuBLAS for large M.

What differs between the two users is data, not control flow: the weight tensors and flags
(zero points, act-order permutation, irregular groups) come from ``_weights`` and
``_launch_flags``, and the FP4 kernels add their constexpr and folded ``alpha`` per path through
``_extra``.
"""

from __future__ import annotations

import torch

from qlinear.streams import PerStream

from .base import out_dtype_of
from .configs import GemvTile, fixed_split, gemv_split, interpreter_tile, is_rocm, rocm_tile, sm_count, w4a16_split, w4a16_tile
from .launch import launch_site
from .runtime import inline_ptx, interpreting

ONE_BITS = 0x3F800000  # the bits of 1.0f: the kernels' decode constant, passed at run time (see w4a16_kernels._nib)


class W4A16Launch:
    """Mixin: ``_init_launch`` at load, then ``apply_weights`` per call. The class sets
    ``dense_min_m`` and ``allow_split_k``; the instance's ``_group`` is the scale group along K."""

    allow_split_k = True
    dense_min_m = 128
    _pinned = None  # (tile, splits) from a tuning hook; None: the shipped per-M choice
    # per-load flags the launches read (set in _init_launch / by the subclass's loader)
    _has_perm = False  # act-order: x is gathered through a K permutation
    _has_gsorted = False  # act-order with groups that are not contiguous blocks (sorted g_idx kept)
    _zp_const = 0  # the implicit zero point without a zero-point tensor (uint4b8: 8)

    def _init_launch(self, dev, n: int, n_groups: int, group: int):
        """Bind the kernels (first use: imports triton; they compile at first call) and the per-layer
        state of the launches."""
        from . import mm_kernels, w4a16_kernels
        from .scaled_mm import reduce_splits

        self._kernel = w4a16_kernels.w4a16_kernel
        self._gemv = w4a16_kernels.w4a16_gemv_kernel
        self._dequant = w4a16_kernels.w4a16_dequant_kernel
        self._reduce_kernel = mm_kernels.splitk_reduce_kernel
        self._reduce = reduce_splits
        self._group = group
        self._ng = n_groups  # scale rows
        self._sms = sm_count(dev)
        self._interp = interpreting()
        self._ptx = inline_ptx()
        # split-K arrivals per N tile (mm_kernels.finish_splits), per (device, stream): calls on one
        # stream are ordered and share them, a second stream running this layer at once gets its own
        # GEMV split K: (arrival counters, fp32 partials [splits, 2 rows, N]) per stream, made once
        self._counters: PerStream[tuple[torch.Tensor, torch.Tensor]] = PerStream()
        self._n_counters = -(-n // 8)
        self._tiles: dict[int, object] = {}
        self._sites: dict[tuple, tuple] = {}  # (tile, M, dtypes, bias?, zero points?) -> a launch's fixed parts

    # ---- what a user of the launcher supplies ------------------------------------------------------
    def _nk(self) -> tuple[int, int]:
        raise NotImplementedError

    def _weights(self, layer):
        """(packed words, scale rows, zero points or None, K permutation or None, sorted g_idx or None)."""
        raise NotImplementedError

    def _one_scale(self, k: int) -> bool:
        """Whether each 128-row block of K lies in one scale group (else SPG 16-row slabs per group)."""
        return not self._has_gsorted and (self._group % 128 == 0 or self._group >= k)

    def _extra(self, path: str, dtype: torch.dtype) -> dict:
        """Extra kernel arguments for a path ("dense", "gemv", "tiles") and activation dtype."""
        return {}

    # ---- tiles, and the tuning hooks for tools/ (after process_weights_after_loading) -------------
    @property
    def tiles(self):
        raise AttributeError("tiles: the W4A16 kernels launch their own kernels (no scaled_mm tile chooser); "
                             "use tile_for(m)")

    def tile_for(self, m: int):
        """The tile an M-row call runs with (a subclass's mid-M tile, else below dense_min_m ours)."""
        mid = self._mid_tile(m)
        return mid if mid is not None else self._tile(m)

    def pin_tile(self, tile, splits: int | None = None):
        """Run every M below dense_min_m with ``tile`` (a configs.Tile or GemvTile), tiles split into
        ``splits`` K slices (None: the shipped split rule). For tuning sweeps; returns the kernel."""
        self._pinned = (tile, splits)
        return self

    def _tile(self, m: int):
        if self._pinned is not None:
            return self._pinned[0]
        b = 1 << max(0, (m - 1).bit_length()) if m <= 256 else 1024  # a few M buckets
        t = self._tiles.get(b)
        if t is None:
            n, k = self._nk()
            t = w4a16_tile(b, n, k, self._group, self._sms)
            if self._interp:
                t = interpreter_tile(t)
            elif is_rocm():
                t = rocm_tile(t)
            self._tiles[b] = t
        return t

    def _mid_tile(self, m: int):
        """The tile of a subclass's own mid-M kernel for M rows (then ``_apply_mid`` runs the call), or
        None: the paths here serve M."""
        return None

    def _splits(self, t, m: int, n: int, k: int):
        """(grid tiles, splits, K per split) of a tile launch."""
        if isinstance(t, GemvTile):
            tiles = -(-n // t.bn)
            return (tiles, *gemv_split(tiles, k, 128, self._sms, t.per_sm))
        tiles = -(-m // t.bm) * -(-n // t.bn)
        pinned = self._pinned[1] if self._pinned is not None else None
        if pinned:
            return (tiles, *fixed_split(k, pinned, 128))
        return (tiles, *(w4a16_split(m, tiles, k, self._sms) if self.allow_split_k else (1, k)))

    # ---- one call ---------------------------------------------------------------------------------
    def apply_weights(self, layer, x, bias=None):
        n, k = self._nk()
        flat = x.dim() == 2  # (a reshape per call costs a few us of host time: only where needed)
        x2 = x if flat else x.reshape(-1, k)
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        m = x2.shape[0]
        out_dtype = out_dtype_of(self.config, x)
        if m == 0:
            return torch.empty((*x.shape[:-1], n), dtype=out_dtype, device=x.device)
        qw, s, zp, perm, gsorted = self._weights(layer)
        mid = self._mid_tile(m)
        if mid is None and m < self.dense_min_m:  # the GEMV or the tiles: one launch site each
            if self._has_perm:  # act-order: permute the activation once (one small gather) so the GEMM
                x2 = x2.index_select(1, perm)  # streams x contiguously (a gather in the tiles cost 3-7x at M=16-64)
            out = self._apply_site(self._tile(m), x2, m, qw, s, zp, gsorted, bias, out_dtype)
            return out if flat else out.reshape(*x.shape[:-1], n)
        perm = perm if perm is not None else qw  # unused placeholders where a flag is off
        gsorted = gsorted if gsorted is not None else perm
        if mid is not None:  # a subclass's mid-M kernel serves this M (mp: w4a16_swap_kernels)
            return self._apply_mid(mid, x, x2, qw, s, zp, perm, gsorted, bias, out_dtype)
        w = torch.empty((k, n), dtype=x2.dtype, device=x2.device)
        bn = 128 if not self._interp else 64
        self._dequant[(-(-k // 128), -(-n // bn))](
            qw, s, zp if zp is not None else s, perm, gsorted, w, n, k, self._ng, GROUP=self._group,
            HAS_ZP=zp is not None, ZP_CONST=self._zp_const, X_PERM=self._has_perm, IRREG=self._has_gsorted, BN=bn,
            num_warps=4, **self._extra("dense", x2.dtype))
        res = torch.mm(x2, w) if bias is None else torch.addmm(bias.to(x2.dtype), x2, w)
        return res.to(out_dtype).reshape(*x.shape[:-1], n)

    def _apply_site(self, t, x2, m, qw, s, zp, gsorted, bias, out_dtype):
        """The GEMV (one launch: split K finishes in-kernel, mm_kernels.finish_splits; its counters and
        fp32 partials are per-stream scratch made once) or the tensor-core tiles (split K into fp32
        partials summed by a reduce launch). What does not change between calls with this (tile, M,
        dtypes, bias?, zero points?) is settled the first time and kept: at these M the host time
        of a call exceeds its GPU time."""
        key = (t, self._pinned, m, x2.dtype, out_dtype, bias is None, zp is None)  # (pinned: a sweep's forced split)
        site = self._sites.get(key)
        n, k = self._nk()
        gemv = isinstance(t, GemvTile)
        if site is None:
            tiles, splits, k_split = self._splits(t, m, n, k)
            one_scale = self._one_scale(k)
            kw = dict(SPLIT_K=splits, GROUP=self._group, HAS_ZP=zp is not None, ZP_CONST=self._zp_const, X_PERM=False,
                      IRREG=self._has_gsorted, HAS_BIAS=bias is not None, BM=t.bm, BN=t.bn,
                      SPG=8 if one_scale else self._group // 16, num_warps=t.num_warps, num_stages=t.num_stages)
            if gemv:
                kw.update(PTX=self._ptx, ONE_SCALE=one_scale, **self._extra("gemv", x2.dtype))
            else:
                kw.update(GROUP_M=t.group_m, **self._extra("tiles", x2.dtype))
            site = self._sites[key] = ((tiles, splits), splits, -(-k_split // 128), kw, tuple(kw.items()))
        grid, splits, block_split, kw, kw_key = site
        dev = x2.device
        out = torch.empty((m, n), dtype=out_dtype, device=dev)
        if gemv:
            cnt, part = self._counters.get(dev, lambda old: (
                torch.zeros(self._n_counters, dtype=torch.int32, device=dev),
                torch.empty((splits, 2, n), dtype=torch.float32, device=dev)),
                lambda v: v[1].shape[0] >= splits)
            c = part if splits > 1 else out
        else:
            c = out if splits == 1 else torch.empty((splits, m, n), dtype=torch.float32, device=dev)
        args = (x2, qw, s, zp if zp is not None else s, qw, gsorted if gsorted is not None else qw,
                bias if bias is not None else s, c, m, n, k, self._ng, x2.stride(0), n, block_split,
                c.stride(0) if splits > 1 else 0)  # (perm: a placeholder, x comes permuted)
        kernel = self._gemv if gemv else self._kernel
        args = args + (out, cnt, n, ONE_BITS) if gemv else args + (ONE_BITS,)
        launch_site(kernel, grid, args, kw, kw_key)
        if splits > 1 and not gemv:
            self._reduce(self._reduce_kernel, c, out)
        return out
