"""Shared launch code for the W8A8 kernels (INT8 and FP8): load-time re-lay and the GEMM launch."""

from __future__ import annotations

import torch

from qlinear.streams import PerStream

from .configs import (SM_COUNT_DEFAULT, GemvTile, Tile, fixed_split, gemv_split, interpreter_tile, is_rocm, rocm_tile,
                      sm_count, split_k, w8a8_tile)
from .launch import launch_site
from .runtime import inline_ptx, interpreting


class QuantInGemm:
    """Up to which M the INT8 / FP8 GEMM quantizes x itself instead of a separate quantizer launch."""

    # dynamic per-token: one launch instead of two. At M=1 the GEMV does (H100, graph: FP8 9.6 vs
    # 11.6 us at 4096x4096, 24.9 vs 26.6 at 14336x4096); from 16-row tiles on every program
    # re-quantizing its slab of x lost (31.8 vs 12.7 at M=16).
    fused_quant_max_m = 1
    # static scales (A_MODE 1): also turns NaN/inf rows into NaN, saving the quantizer's launch and the
    # NaN check's two. The GEMV gains; the tile kernels lose badly: on the H200 decode step (8
    # Llama-3-8B layers, triton forced) fusing up to M = 64 took int8-static from 1093 / 1288 to
    # 5824 / 2376 us at M = 2 / 16 (docs/results/gpu/lease8/static-fused-*.json). So M = 1 only.
    static_fused_max_m = 1


def weight_nk(weight: torch.Tensor) -> torch.Tensor:
    """The layer's weight [K, N] -> its [N, K] storage with K contiguous (no copy when, as loaded,
    it is the transposed view of a contiguous [N, K])."""
    w = weight.t()
    return w if w.stride(1) == 1 and w.stride(0) == w.shape[1] else w.contiguous()


def flat_scale(s: torch.Tensor | None, n: int, name: str, logical_widths=None) -> tuple[torch.Tensor, bool]:
    """A weight scale [1] / [N, 1] / [N] -> (fp32 contiguous [1] or [N], per_column). A fused module
    (``logical_widths``, e.g. QKV) may carry one per-tensor scale per part: expanded per column."""
    if s is None:
        raise ValueError(f"{name}: the layer has no weight scale")
    f = s.detach().reshape(-1).to(torch.float32).contiguous()
    if f.numel() == 1:
        return f, False
    if f.numel() == n:
        return f, True
    if logical_widths and f.numel() == len(logical_widths) and sum(logical_widths) == n:
        widths = torch.tensor(list(logical_widths), device=f.device)
        return torch.repeat_interleave(f, widths).contiguous(), True
    raise ValueError(f"{name}.shape: expected [1] or [{n}, 1], got {tuple(s.shape)}")


def load_weight_and_scale(kernel, layer, w_name: str, s_name: str, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    """Re-lay the W8A8 weight (as loaded [K, N]) to [N, K] storage and flatten its scale, in place on
    the layer; returns (weight [N, K], scale is per column)."""
    w = getattr(layer, w_name)
    if w.dtype != dtype:
        raise ValueError(f"{w_name}.dtype: expected {str(dtype).removeprefix('torch.')}, got {w.dtype}")
    w_nk = weight_nk(w.data)
    kernel.replace_parameter(layer, w_name, w_nk.t())
    ws, per_col = flat_scale(getattr(layer, s_name, None), w_nk.shape[0], s_name, getattr(layer, "logical_widths", None))
    kernel.replace_parameter(layer, s_name, ws)
    return w_nk, per_col


def load_static_input_scale(kernel, layer, name: str, what: str) -> None:
    """A static activation scale -> one fp32 [1] (the max over a fused module's parts, as vLLM does)."""
    xs = getattr(layer, name, None)
    if xs is None:
        raise ValueError(f"{name}: {what} needs an input scale")
    kernel.replace_parameter(layer, name, xs.data.reshape(-1).to(torch.float32).max().reshape(1))


class TileCache:
    """Tile per power-of-two M bucket, computed once per bucket."""

    def __init__(self, fn, n: int, k: int, device, allow_split: bool = True) -> None:
        self.fn, self.n, self.k = fn, n, k
        self.allow_split = allow_split  # split-K for decode on narrow layers (configs.split_k)
        self.sms = sm_count(device)
        self.interp = interpreting()
        self.rocm = is_rocm()
        self.ptx = inline_ptx()
        self.cache: dict[int, object] = {}

    def __call__(self, m: int):
        b = 1 << max(0, (m - 1).bit_length()) if m <= 256 else 1024
        t = self.cache.get(b)
        if t is None:
            t = self.fn(b, self.n, self.k, self.sms)
            if self.interp:
                t = interpreter_tile(t)
            elif self.rocm:
                t = rocm_tile(t)
            self.cache[b] = t
        return t


class FixedTile:
    """One tile for every M (benchmark sweeps, tests, ``pin_tile``). ``splits``: 1 (default) no
    split-K, None the shipped rule (configs.split_k, for ``sms`` SMs), n exactly n K slices."""

    interp = interpreting()
    ptx = inline_ptx()

    def __init__(self, tile, splits: int | None = 1, sms: int = 0) -> None:
        self.tile, self.splits, self.sms = tile, splits, sms
        self.allow_split = splits != 1

    def __call__(self, m: int):
        return self.tile


def default_tiles(n: int, k: int, device) -> TileCache:
    return TileCache(w8a8_tile, n, k, device)


def launch_scaled_mm(kernel, tile, a, w_nk, out, a_scale, w_scale, bias, azp, azp_adj, *, is_int8: bool,
                     a_mode: int, a_per_row: bool, b_per_col: bool, azp_mode: int, ub=None) -> None:
    """One GEMM launch (two with split-K on 16+-row tiles). a_mode 0: ``a`` is quantized, ``a_scale`` per tensor or
    per row; 1: ``a`` is 16-bit, quantized inside with the static ``a_scale`` (and ``azp``), rows holding
    NaN/inf come out NaN; 2: ``a`` is 16-bit, quantized inside per row (``ub``: FP8 amax upper bound).
    Unused pointers get a harmless stand-in."""
    from . import mm_kernels

    m, k = a.shape
    n = w_nk.shape[0]
    t = tile(m)
    if isinstance(t, GemvTile) and (m != 1 or k % 4 or w_nk.stride(1) != 1 or a.stride(1) != 1):
        t = Tile(16, 64, 128, 1, 4, 4)  # the GEMV reads one row and B as 4-byte words of K
    args = (a, w_nk, out, a_scale, w_scale, bias if bias is not None else w_scale,
            azp if azp is not None else w_scale, azp_adj if azp_adj is not None else w_scale,
            ub if ub is not None else w_scale)
    flags = (is_int8, a_mode, a_per_row, b_per_col, azp_mode, bias is not None, ub is not None)
    if isinstance(t, GemvTile):
        _launch_gemv(tile, t, args, m, n, k, a, w_nk, out, flags)
        return
    tiles = -(-m // t.bm) * -(-n // t.bn)
    pinned = getattr(tile, "splits", None)
    if not tile.allow_split:
        splits, k_split = 1, k
    elif pinned:
        splits, k_split = fixed_split(k, pinned, t.bk)
    else:
        splits, k_split = split_k(m, tiles, k, t.bk, tile.sms)
    c = out if splits == 1 else torch.empty((splits, m, n), dtype=torch.float32, device=out.device)
    even_k = k % t.bk == 0 and k_split % t.bk == 0
    kw, kw_key = _constexprs(tile, (t, splits, flags, even_k), lambda: dict(
        SPLIT_K=splits, IS_INT8=is_int8, A_MODE=a_mode, A_PER_ROW=a_per_row, B_PER_COL=b_per_col, AZP=azp_mode,
        HAS_BIAS=bias is not None, HAS_UB=ub is not None, BM=t.bm, BN=t.bn, BK=t.bk, GROUP_M=t.group_m, EVEN_K=even_k,
        num_warps=t.num_warps, num_stages=t.num_stages))
    full = (*args[:2], c, *args[3:], m, n, k, a.stride(0), a.stride(1), w_nk.stride(0), w_nk.stride(1), c.stride(-2),
            c.stride(-1), k_split, c.stride(0) if splits > 1 else 0)
    launch_site(kernel, (tiles, splits), full, kw, kw_key)
    if splits > 1:
        reduce_splits(mm_kernels.splitk_reduce_kernel, c, out)


def _constexprs(tile, key, make) -> tuple[dict, tuple]:
    """A launch's constexprs and launch options for ``key``, built once and kept on the layer's tile
    chooser with their cache key (``FastKernel.launch``'s ``kw_key``): per call, no dict to build."""
    sites = tile.__dict__.setdefault("sites", {})
    hit = sites.get(key)
    if hit is None:
        kw = make()
        hit = sites[key] = (kw, tuple(kw.items()))
    return hit


def _launch_gemv(tile, t, args, m, n, k, a, w_nk, out, flags) -> None:
    """Decode: the one-row GEMV, K split per the tile's programs per SM and finished in-kernel into
    per-stream scratch; its constexprs are kept on the tile chooser (``_constexprs``)."""
    from . import mm_kernels

    tiles = -(-n // t.bn)
    splits, k_split = gemv_split(tiles, k, t.bk, tile.sms or SM_COUNT_DEFAULT, t.per_sm)
    is_int8, a_mode, a_per_row, b_per_col, azp_mode, has_bias, has_ub = flags
    kw, kw_key = _constexprs(tile, (t, splits, k, flags), lambda: dict(
        PTX=tile.ptx, SPLIT_K=splits, IS_INT8=is_int8, A_MODE=a_mode, A_PER_ROW=a_per_row, B_PER_COL=b_per_col,
        AZP=azp_mode, HAS_BIAS=has_bias, HAS_UB=has_ub, BN=t.bn, BK=t.bk, EVEN_K=k % t.bk == 0 and k_split % t.bk == 0,
        QBK=min(8192, 1 << max(4, (k - 1).bit_length())), num_warps=t.num_warps, num_stages=t.num_stages))
    cnt, part = gemv_scratch(tile, n, splits, out.device)
    c = part if splits > 1 else out
    full = (*args[:2], c, *args[3:], out, cnt, m, n, k, a.stride(1), w_nk.stride(0), w_nk.stride(1), n, 1, k_split,
            n if splits > 1 else 0, out.stride(0))
    launch_site(mm_kernels.scaled_gemv_kernel, (tiles, splits), full, kw, kw_key)


def gemv_scratch(tile, n: int, splits: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(split-K arrival counters of finish_splits, one per N tile; fp32 partials [splits, 1, N]),
    kept on the layer's tile chooser per (device, stream): calls on one stream are ordered and
    share them, two streams running the layer at once never count into the same slots. The kernel
    leaves the counters zeroed."""
    per = tile.__dict__.setdefault("counters", PerStream())  # setdefault: one per tile, even from two threads
    need = -(-n // 8)
    return per.get(device, lambda old: (torch.zeros(need, dtype=torch.int32, device=device),
                                        torch.empty((max(splits, 1), 1, n), dtype=torch.float32, device=device)),
                   lambda v: v[0].numel() >= need and v[1].shape[0] >= splits and v[1].shape[2] >= n)


def reduce_splits(kernel, ws: torch.Tensor, out: torch.Tensor) -> None:
    s, m, n = ws.shape
    block = 1024
    kernel[(-(-(m * n) // block),)](ws, out, m, n, out.stride(0), S=s, BLOCK=block, num_warps=4)


def as_2d(x: torch.Tensor, k: int) -> torch.Tensor:
    x2 = x.reshape(-1, k)
    return x2 if x2.stride(-1) == 1 else x2.contiguous()
