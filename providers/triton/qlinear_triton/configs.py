"""Fixed tile configurations per M bucket (no runtime autotuning: a decode step can't afford it).

Small M (decode) is memory bound: the weight must stream at full bandwidth, so tiles are short in
M, deep in K, and narrow enough in N that the grid covers every SM (H100: 132) without split-K.
Large M is compute bound: 128-wide tiles with grouped ordering for L2 reuse. The numbers are
starting points for the H100 (sm_90); ``bench_triton.py`` times them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SM_COUNT_DEFAULT = 132


@dataclass(frozen=True)
class Tile:
    bm: int
    bn: int
    bk: int
    group_m: int
    num_warps: int
    num_stages: int


def sm_count(device) -> int:
    if isinstance(device, torch.device) and device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).multi_processor_count
    return SM_COUNT_DEFAULT


def _narrow_bn(n: int, sms: int, choices=(128, 64, 32)) -> int:
    """Widest BN whose grid still gives every SM a tile."""
    for bn in choices:
        if -(-n // bn) >= sms:
            return bn
    return choices[-1]


def w8a8_tile(m: int, n: int, k: int, sms: int = SM_COUNT_DEFAULT) -> Tile:
    """INT8 / FP8 scaled mm (1-byte operands)."""
    if m <= 16:
        return Tile(16, _narrow_bn(n, sms), 256 if k >= 256 else 128, 1, 4, 4)
    if m <= 64:
        return Tile(64, _narrow_bn(n, sms, (128, 64)), 128, 1, 4, 4)
    if m <= 256:
        return Tile(64, 128, 128, 8, 4, 4)
    return Tile(128, 128, 128, 8, 8, 4)


def block_fp8_tile(m: int, n: int, k: int, sms: int = SM_COUNT_DEFAULT) -> Tile:
    """Block FP8: BK is the 128-wide scale group."""
    if m <= 16:  # BK is pinned to the 128 scale group: more stages keep enough bytes in flight
        return Tile(16, _narrow_bn(n, sms), 128, 1, 4, 8)
    if m <= 64:
        return Tile(64, _narrow_bn(n, sms, (128, 64)), 128, 1, 4, 4)
    if m <= 256:
        return Tile(64, 128, 128, 8, 4, 4)
    return Tile(128, 128, 128, 8, 8, 4)


def w4a16_tile(m: int, n: int, k: int, group: int, sms: int = SM_COUNT_DEFAULT) -> Tile:
    """W4A16. Decode: the bytes in flight per SM are N * stages * BK / 2 / SMs whatever BN is (HBM3
    latency x bandwidth wants ~20-30 KB per SM), so the pipeline is deep (BK 256 x 6 stages: ~24 KB at
    N=4096); BK stays at 256 because the dequantized [BK, BN] tile lives in registers. BK spans whole
    groups (or lies inside one) so scales load one row per group."""
    if m <= 16:
        bk = 256
        while bk > 64 and (k % bk or not (bk % group == 0 or group % bk == 0)):
            bk //= 2
        return Tile(16, _narrow_bn(n, sms), bk, 1, 4, 6)
    bk = 64 if (group % 64 == 0 or 64 % group == 0) else 32
    if m <= 64:
        return Tile(64, _narrow_bn(n, sms, (128, 64)), bk, 1, 4, 4)
    if m <= 256:
        return Tile(64, 128, bk, 8, 4, 4)
    return Tile(128, 128, bk, 8, 8, 3)


def rocm_tile(t: Tile) -> Tile:
    """AMD GPUs (unverified here): 64 KB of LDS and a 2-stage pipeliner; keep tiles inside that."""
    return Tile(t.bm, t.bn, min(t.bk, 128), t.group_m, t.num_warps, min(t.num_stages, 2))


def is_rocm() -> bool:
    return getattr(torch.version, "hip", None) is not None


def interpreter_tile(t: Tile) -> Tile:
    """Under TRITON_INTERPRET each program is NumPy work: fewer, larger tiles run faster on CPU."""
    return Tile(max(16, min(t.bm, 64)), max(t.bn, 64), t.bk, t.group_m, t.num_warps, 1)


def split_k(m: int, tiles: int, k: int, bk: int, sms: int = SM_COUNT_DEFAULT, max_split: int = 8) -> tuple[int, int]:
    """Decode on a layer too narrow to fill the GPU (tiles < SMs / 2): split K so that about one
    program per SM streams weights. Returns (splits, K per split, a multiple of BK); (1, K) = none."""
    if m > 64 or tiles * 2 > sms or k < 4 * bk:
        return 1, k
    want = min(max_split, max(2, sms // max(tiles, 1)), k // (2 * bk))
    if want < 2:
        return 1, k
    per = -(-(-(-k // want)) // bk) * bk
    return -(-k // per), per
