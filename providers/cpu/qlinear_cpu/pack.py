"""Load-time re-lays of the weights into the tile layouts the C++ micro-kernels read.

All layouts split N into blocks of 32 output columns (two 16-column AMX B tiles) and K into chunks
(32 for bf16 tiles, 64 for int8 tiles). One (block, chunk) is contiguous, so a thread walking its
N blocks streams memory in order.

bf16 tiles (``_tile_dpbf16ps``): a tile row is 16 columns x 2 consecutive K values; the 32 codes of
a row are stored in that order, one byte each (fp8 / int8) or, for 4-bit codes, two rows per 32
bytes (row 2p in the low nibble, row 2p+1 in the high one).
int8 tiles (``_tile_dpbssd``): a tile row is 16 columns x 4 consecutive K values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NB = 32  # output columns per block


def round_up(a: int, b: int) -> int:
    return -(-a // b) * b


def _pad_nk(w: torch.Tensor, n_pad: int, k_pad: int, value: int) -> torch.Tensor:
    n, k = w.shape
    if n_pad == n and k_pad == k:
        return w
    return F.pad(w, (0, k_pad - k, 0, n_pad - n), value=value)


def bf16_tile_rows(codes_nk: torch.Tensor, k_pad: int, fill: int) -> torch.Tensor:
    """codes [N, K] (one byte per value) -> [N/32, K/32, 2, 16, 32] in bf16-VNNI row order."""
    n, k = codes_nk.shape
    n_pad = round_up(n, NB)
    w = _pad_nk(codes_nk, n_pad, k_pad, fill)
    # [nb, tile, col, kc, row, pair] -> [nb, kc, tile, row, col, pair]
    w = w.reshape(n_pad // NB, 2, 16, k_pad // 32, 16, 2).permute(0, 3, 1, 4, 2, 5)
    return w.reshape(n_pad // NB, k_pad // 32, 2, 16, 32).contiguous()


def pack_int4(codes_nk: torch.Tensor, k_pad: int) -> torch.Tensor:
    """int codes 0..15 [N, K] -> uint8 [N/32, K/32, 2 tiles, 256 bytes] (pad codes are 8: value 0)."""
    rows = bf16_tile_rows(codes_nk.to(torch.uint8), k_pad, 8)
    lo, hi = rows[..., 0::2, :], rows[..., 1::2, :]  # rows 2p and 2p+1
    return (lo | (hi << 4)).reshape(*rows.shape[:3], 256).contiguous()


def pack_bytes(codes_nk: torch.Tensor, k_pad: int) -> torch.Tensor:
    """int8 / uint8 / fp8 [N, K] -> uint8 [N/32, K/32, 2 tiles, 512 bytes] (pad bytes 0: value 0)."""
    rows = bf16_tile_rows(codes_nk.contiguous().view(torch.uint8), k_pad, 0)
    return rows.reshape(*rows.shape[:3], 512).contiguous()


def pack_fp8(w_nk: torch.Tensor, k_pad: int) -> torch.Tensor:
    """fp8 [N, K] -> uint8 [N/32, K/32, 2 tiles, 512 bytes] for the table expansion: in each 64-byte
    pair of tile rows (2p, 2p+1), 128-bit lane j holds 8 codes of row 2p then 8 of row 2p+1 (what
    the unpack of low / high bytes within lanes turns back into two whole rows)."""
    rows = bf16_tile_rows(w_nk.contiguous().view(torch.uint8), k_pad, 0)  # [nb, kc, 2, 16, 32]
    nb, kc = rows.shape[:2]
    rows = rows.reshape(nb, kc, 2, 8, 2, 4, 8).permute(0, 1, 2, 3, 5, 4, 6)  # [.., pair, lane, row, 8]
    return rows.reshape(nb, kc, 2, 512).contiguous()


def pack_int8_vnni4(w_nk: torch.Tensor, k_pad: int) -> torch.Tensor:
    """int8 [N, K] -> int8 [N/32, K/64, 2 tiles, 16 rows, 64 bytes] for ``_tile_dpbssd``."""
    n, k = w_nk.shape
    n_pad = round_up(n, NB)
    w = _pad_nk(w_nk, n_pad, k_pad, 0)
    # [nb, tile, col, kc, row, quad] -> [nb, kc, tile, row, col, quad]
    w = w.reshape(n_pad // NB, 2, 16, k_pad // 64, 16, 4).permute(0, 3, 1, 4, 2, 5)
    return w.reshape(n_pad // NB, k_pad // 64, 2, 16, 64).contiguous()


def pad_cols(t: torch.Tensor, n_pad: int, value: float = 0.0) -> torch.Tensor:
    """float32 [..., N] -> [..., n_pad], contiguous."""
    t = t.float()
    if t.shape[-1] != n_pad:
        t = F.pad(t, (0, n_pad - t.shape[-1]), value=value)
    return t.contiguous()


def block_scales(t_gn: torch.Tensor, n_pad: int) -> torch.Tensor:
    """float [groups, N] -> float32 [n_pad/32, groups, 32]: one N block's scales of every group are
    contiguous, so the kernel reads them in the order it walks K (no strided misses)."""
    t = pad_cols(t_gn, n_pad)
    return t.reshape(t.shape[0], n_pad // NB, NB).transpose(0, 1).contiguous()


# The C++ kernel expands one K group of weights to bf16 tiles before multiplying them (so every
# 32-row block of M reuses them): 2 KiB of tiles per 32 K. A per-channel "group" of K = 4096 would
# be a 256 KiB buffer written and read back through L2 for every 32 output columns; splitting it
# into sub-groups of at most 128 K (8 KiB, L1-resident) with the same scale repeated costs one
# fp32 scale-and-add per 128 K instead (512 K, 32 KiB, measured slower at M = 8-32).
MAX_GROUP = 128


def split_group(group: int) -> int:
    """The largest multiple of 32 that divides ``group`` and is at most ``MAX_GROUP``."""
    if group <= MAX_GROUP:
        return group
    return max(g for g in range(32, MAX_GROUP + 1, 32) if group % g == 0)


def repeat_groups(t_gn: torch.Tensor, times: int) -> torch.Tensor:
    """[groups, N] -> [groups * times, N]: each group's row repeated for its sub-groups."""
    return t_gn if times == 1 else t_gn.repeat_interleave(times, 0)


def pack_int4_vnni4(codes_nk: torch.Tensor, k_pad: int) -> torch.Tensor:
    """int codes 0..15 [N, K] -> uint8 [N/32, K/32, 2 tiles, 256 bytes] for the W4A8 kernel: each
    tile's 32 K are 8 VNNI-4 rows (16 columns x 4 consecutive K, the int8 B-tile / ``vpdpbusd``
    operand layout), stored as 4 lines of 64 bytes with row 2p in the low nibbles and row 2p+1 in
    the high ones (pad codes 0: the activation is 0 there)."""
    n, k = codes_nk.shape
    n_pad = round_up(n, NB)
    w = _pad_nk(codes_nk.to(torch.uint8), n_pad, k_pad, 0)
    # [nb, tile, col, kc, row, quad] -> [nb, kc, tile, row, col, quad]
    w = w.reshape(n_pad // NB, 2, 16, k_pad // 32, 8, 4).permute(0, 3, 1, 4, 2, 5)
    w = w.reshape(n_pad // NB, k_pad // 32, 2, 8, 64)
    lo, hi = w[:, :, :, 0::2], w[:, :, :, 1::2]  # rows 2p and 2p+1
    return (lo | (hi << 4)).reshape(n_pad // NB, k_pad // 32, 2, 256).contiguous()
