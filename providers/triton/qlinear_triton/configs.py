"""Fixed tile configurations per M bucket (no runtime autotuning: a decode step can't afford it).

Small M (decode) is memory bound: the weight must stream at full bandwidth, so tiles are short in
M, deep in K, and narrow enough in N that the grid covers every SM (H100: 132) without split-K.
Large M is compute bound: 128-wide tiles with grouped ordering for L2 reuse. The numbers are
starting points for the H100 (sm_90); ``tools/triton_bench.py`` times them.
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


@dataclass(frozen=True)
class GemvTile:
    """Decode tiles of the GEMV kernels: all BM rows (W4A16: <= 2, W8A8: 1), BN columns, BK of K per step;
    K is split so that about ``per_sm`` programs run per SM (``gemv_split``)."""

    bm: int
    bn: int
    bk: int
    per_sm: int
    num_warps: int
    num_stages: int


# Up to this many rows the GEMV kernels run (no tensor cores; their cost grows with M), measured
# on the H100 with tools/triton_bench.py's sweep (graph replay, us at 4096x4096 / 14336x4096):
#   W4A16 M=2: GEMV 12.5 / 27.9 vs 16-row tiles 15.2 / 33.5; at M=4 tiles won (15 vs 17 at 4096).
#   FP8   M=2: GEMV 12.6 / 32.2 vs tiles 13.7 / 25.7 (mixed); M=1: GEMV 11.6 / 26.0 vs 11.8+ / 29.
W4A16_GEMV_MAX_M = 2
W8A8_GEMV_MAX_M = 1


def gemv_split(tiles: int, k: int, bk: int, sms: int, per_sm: int) -> tuple[int, int]:
    """(splits, K per split, a multiple of BK) giving ~per_sm programs per SM, >= 2 steps each."""
    want = max(1, min(k // (2 * bk), -(-per_sm * sms // max(tiles, 1))))
    per = -(-(-(-k // want)) // bk) * bk
    return -(-k // per), per


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
    """INT8 / FP8 scaled mm (1-byte operands). Decode (M <= W8A8_GEMV_MAX_M): the one-row GEMV kernel,
    whose [BN, BK / 4] accumulator lives in registers."""
    if m <= W8A8_GEMV_MAX_M:
        # H200, graph replay, us (FP8 / INT8 e2e): 4096x4096 BN 8 x BK 512: 8.2 / 8.0 (BN 16 x BK 256:
        # 9.8 / 9.6); 14336x4096: 19.3 / 18.5 vs BN 16 x BK 256: 18.3 / 17.3. Wide layers fill the GPU
        # without split-K either way; there, shorter steps over twice the columns win.
        if -(-n // 8) >= 8 * sms:
            return GemvTile(1, 16, 256, 2, 4, 1)
        return GemvTile(1, 8, 512, 2, 4, 1)
    if m <= 16:
        return Tile(16, _narrow_bn(n, sms), 256 if k >= 256 else 128, 1, 4, 4)
    if m <= 64:
        return Tile(64, _narrow_bn(n, sms, (128, 64)), 128, 1, 4, 4)
    if m <= 256:
        return Tile(64, 128, 128, 8, 4, 4)
    return Tile(128, 256, 128, 8, 8, 3)  # H100 M=1024: 27.6 vs 31.2 us (128x128) at 4096x4096


def block_fp8_tile(m: int, n: int, k: int, sms: int = SM_COUNT_DEFAULT) -> Tile:
    """Block FP8: BK is the 128-wide scale group."""
    if m <= 16:  # BK is pinned to the 128 scale group: more stages keep enough bytes in flight
        return Tile(16, _narrow_bn(n, sms), 128, 1, 4, 8)
    if m <= 64:
        return Tile(64, _narrow_bn(n, sms, (128, 64)), 128, 1, 4, 4)
    if m <= 256:
        return Tile(64, 128, 128, 8, 4, 4)
    return Tile(128, 128, 128, 8, 8, 4)


def w4a16_tile(m: int, n: int, k: int, group: int, sms: int = SM_COUNT_DEFAULT):
    """W4A16 (BK is the layout's 128-row block). M <= W4A16_GEMV_MAX_M: the GEMV kernel, N in 64-wide
    tiles, K split so about ``per_sm`` programs per SM keep blocks in flight. Otherwise tensor-core
    tiles as tall as M (each tile dequantizes its weights once for all its rows), K split in 4 up to
    M = 64 (w4a16_split). H100, graph replay, us at 4096x4096 / 14336x4096, split 4:
    M=32 BM 32 x BN 64: 15.1 / 37.6 (BM 64 as before: 27.0 / 60.7); M=64 BM 64 x BN 128: 26.8 / 63.2
    (BN 64: 23.2 / 69.7; unsplit as before: 29.0 / 68.7). With the (q - zero)/16 decode since:
    M=32 15.2 / 41.6, M=64 22.1 / 53.4."""
    if m <= W4A16_GEMV_MAX_M:  # M=1, H200 graph us: BN 64 / 2 warps / 16 per SM 8.2 and 17.4 vs 128 / 4 / 8: 8.5, 18.2
        if m == 1:
            return GemvTile(1, 64, 128, 16, 2, 1)
        return GemvTile(2, 64, 128, 8, 4, 1)
    if m <= 16:  # H200 graph us, M=16, 4096x4096 / 14336x4096: 128 wide, 3 stages, split 8: 11.96 / 28.45;
        return Tile(16, 128, 128, 1, 4, 3)  # 64 wide, 4 stages, split 4 as before: 13.01 / 31.82
    if m <= 32:
        return Tile(32, 64, 128, 1, 4, 3)
    if m <= 64:
        return Tile(64, 128, 128, 1, 4, 3)
    if m <= 256:
        return Tile(64, 128, 128, 8, 4, 3)
    return Tile(128, 128, 128, 8, 8, 3)


def rocm_tile(t):
    """AMD GPUs (unverified here): 64 KB of LDS and a 2-stage pipeliner; keep tiles inside that."""
    if isinstance(t, GemvTile):
        return t
    return Tile(t.bm, t.bn, min(t.bk, 128), t.group_m, t.num_warps, min(t.num_stages, 2))


def is_rocm() -> bool:
    return getattr(torch.version, "hip", None) is not None


def interpreter_tile(t):
    """Under TRITON_INTERPRET each program is NumPy work: fewer, larger tiles run faster on CPU."""
    if isinstance(t, GemvTile):
        return GemvTile(t.bm, max(t.bn, 64), t.bk, 1, t.num_warps, 1)
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


def fixed_split(k: int, splits: int, bk: int) -> tuple[int, int]:
    """(splits, K per split, a multiple of BK) for a pinned split count (``pin_tile``)."""
    per = -(-(-(-k // max(1, splits))) // bk) * bk
    return -(-k // per), per


W4A16_TILE_SPLITS = 4
W4A16_TILE_SPLITS_M16 = 8  # M <= 16 with 128-wide tiles (w4a16_tile)


def w4a16_split(m: int, tiles: int, k: int, sms: int = SM_COUNT_DEFAULT) -> tuple[int, int]:
    """K splits of the W4A16 tensor-core tiles: in 4 up to M = 64, even on layers wide enough to fill
    the GPU. A tile dequantizes its weights once for all its rows, so at these M it is latency bound
    and more programs in flight help (H200, M=16, graph us: 4096x4096 12.4 vs 13.9 with split_k's 2;
    14336x4096 32.2 vs 34.7 unsplit; H100, M=32 / 64: w4a16_tile); M <= 16 in 8 (its tiles are 128
    wide: w4a16_tile). Larger M: split_k."""
    want = W4A16_TILE_SPLITS_M16 if m <= 16 else W4A16_TILE_SPLITS
    if m <= 64 and k >= 2 * want * 128:
        per = -(-(-(-k // want)) // 128) * 128
        return -(-k // per), per
    return split_k(m, tiles, k, 128, sms)


@dataclass(frozen=True)
class SwapTile:
    """Tiles of the swapped W4A16 tensor-core kernel (w4a16_swap_kernels): BN weight columns (rows of
    out^T, the wgmma M side: 64 per warpgroup) x BM activation rows, 128 rows of K per step (one
    layout block, 8 slabs of 16). Variants (at most one set): WIDE, the block's 8 slabs as one
    [BN, 128] operand and one dot (Triton issues it as 8 async register-A wgmmas); PAIR, K = 32 per
    dot (nibbles p and p + 4 joined); REG, 16-bit word loads and 16-bit dequantization math; none,
    one K = 16 dot per slab. ``splits``: K splits (None: ``swap_split``)."""

    bm: int
    bn: int
    num_warps: int
    num_stages: int
    pair: bool = False
    reg: bool = False
    splits: int | None = None
    wide: bool = False
    slab_scales: bool = False  # WIDE with one group per block: scales loaded per slab anyway (another layout)
    # not swapped after all: x [BM, 128] . W [128, BN] per block (w4a16_wideb_kernel), both wgmma operands
    # in shared memory and one asynchronous dot per block; BM >= 64 (wgmma's M), else mma.sync
    bmajor: bool = False


# The mid-M kernels serve W4A16 (not FP4) from W4A16_SWAP_MIN_M to W4A16_SWAP_MAX_M rows where
# w4a16_swap_tile returns a tile; elsewhere the GEMV, the 16-row tiles and dequantize + cuBLAS as
# before. 0 for the max turns them off. Measured (tools/triton_w4a16_sweep.py, H200, CUDA graph,
# docs/results/gpu/w4a16-mid/): at M <= 32 every candidate lost to the 16-row tiles (M=16 sum over the
# four Llama-3-8B shapes 153 vs 119 us); above 128 to dequantize + cuBLAS (M=256: 457 vs 332 us).
W4A16_SWAP_MIN_M = 33
W4A16_SWAP_MAX_M = 128


def w4a16_swap_tile(m: int, n: int, k: int, group: int, sms: int = SM_COUNT_DEFAULT) -> SwapTile | None:
    """The weight-as-B kernel (w4a16_wideb_kernel: both wgmma operands in shared memory, one async dot
    per 128-row block, which ptxas does not serialize) where it won on the H200 (graph us, this tile
    vs the path without it): M=64: 64 x 256 on 8 warps, 3 stages: 6144x4096 24.3 vs 27.9, 4096x4096
    18.3 vs 22.6, 4096x14336 45.2 vs 68.4; wide layers 64 x 128 on 4 warps: 28672x4096 75.7 vs 102.0.
    M=128: 128 x 64 on 4 warps, 2 stages, wide layers only: 28672x4096 125.6 vs 189.4 (narrower
    layers: the dequantize + cuBLAS path, 34.2 / 24.4 / 79.2 vs 37.8 / 26.9 / 78.6). None elsewhere.
    The swapped kernel (out^T = W^T x^T, the weight as the register A operand) stays for pinned sweeps:
    Triton 3.6 issues its register-A wgmmas serialized (ptxas C7515), so it lost everywhere."""
    wide = n >= 16384
    if m <= 64:
        return SwapTile(64, 128, 4, 3, bmajor=True) if wide else SwapTile(64, 256, 8, 3, bmajor=True)
    if m <= 128 and wide:
        return SwapTile(128, 64, 4, 2, bmajor=True)
    return None


def swap_split(tiles: int, k: int, sms: int = SM_COUNT_DEFAULT, max_split: int = 8) -> tuple[int, int]:
    """(splits, K per split, a multiple of 128) for the swapped kernel: enough K splits that the
    grid gives every SM a program when the tiles alone do not, each split >= 2 blocks of 128."""
    blocks = -(-k // 128)
    if tiles >= sms or blocks < 4:
        return 1, k
    want = min(max_split, -(-sms // max(tiles, 1)), blocks // 2)
    if want < 2:
        return 1, k
    per = -(-blocks // want) * 128
    return -(-k // per), per
