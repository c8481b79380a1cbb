"""Tile configuration per M bucket, chosen at call time from the one compiled module.

The ids are ``TileConfig`` in ``csrc/scaled_mm_api.h``; the shapes live in ``csrc/scaled_mm.cuh``
(``cfg::Small`` / ``Mid`` / ``Large``). Three instantiations per (family, output dtype) keep the build
near a minute. The bucket edges follow the tile heights: a 64-row tile up to M = 128, then 128-row
tiles. The H200 sweep (docs/results/gpu/cutlass/bench.log, each tile forced) agrees: small fastest
(or within 4 %) at M <= 16 on the four Llama-3-8B shapes, mid at M = 128, large from M = 512.
``QLINEAR_CUTLASS_TILE`` forces one (small / mid / large) for sweeps.
"""

from __future__ import annotations

import os

from qlinear.settings import env_int

SMALL, MID, LARGE = 0, 1, 2
NAMES = {"small": SMALL, "mid": MID, "large": LARGE}
SHAPES = {SMALL: "64x64x128 cluster 1x8 (warp-specialized)", MID: "64x128x128 cluster 2x1 (ping-pong)",
          LARGE: "128x128x128 cluster 2x1 (ping-pong)"}
SMALL_MAX_M = 64
MID_MAX_M = 128


def forced(var: str = "QLINEAR_CUTLASS_TILE") -> int | None:
    """The tile the environment variable ``var`` forces (small / mid / large), or None."""
    name = os.environ.get(var)
    if not name:
        return None
    if name not in NAMES:
        raise ValueError(f"{var}: expected one of {sorted(NAMES)}, got {name!r}")
    return NAMES[name]


def tile_for(m: int, small_max_m: int = SMALL_MAX_M, mid_max_m: int = MID_MAX_M) -> int:
    if m <= small_max_m:
        return SMALL
    return MID if m <= mid_max_m else LARGE


# ---- W4A16 / W8A16 (csrc/w4a16.cuh W4ConfigOf; ids W4A16Config in csrc/w4a16_api.h) -------------
# Tiles are (weight rows) x (token rows) of the transposed GEMM, K 64, stream-K. The register-sourced
# wgmma computes the whole token width of a tile whatever M is, so the token side follows M; layers
# with N >= W4A16_WIDE_N take 256 weight rows per tile. From the H200 sweep (tools/cutlass_w4a16_tiles.py,
# GPTQ g128 bf16, graph us per call; docs/results/gpu/lease9/w4a16-tiles.json), best tile / the tile
# this picks where they differ, against the three-tile set this replaced (128x64 to M = 64, 128x128 to
# 512, 128x256 persistent):
#   6144x4096   M=16 16.4 (128x16; was 19.5), M=64 18.9 (128x64k128; 128x64 19.3), M=256 27.7 (128x128),
#               M=512 42.7 (128x256; was 48.8), M=1024 74.7 (was 90.1)
#   28672x4096  M=16 28.1 (256x16; was 43.4), M=64 36.1 (256x64; was 43.6), M=128 48.0 (256x128; was 61.3),
#               M=256 85.3 (128x256 stream-K; was 114.2), M=512 167.0 (256x128; 128x256 173.7; was 208.9)
#   4096x14336  M=16 24.5 (128x16; was 29.0), M=256 52.9 (128x128k64c1; 128x128 55.1), M=512 83.3 (was 101.8)
# The same tiles serve 8-bit codes (W8A16), where the sweep agrees on the bucket edges.
# ``QLINEAR_CUTLASS_W4A16_TILE`` forces one (a name of W4A16_TILES) for sweeps.
W4A16_TILES = {"m16": 0, "m16w": 1, "m64": 2, "m64w": 3, "m128": 4, "m128w": 5, "m256": 6}
W4A16_SHAPES = {0: "128x16x64 cluster 1", 1: "256x16x64 cluster 1", 2: "128x64x64 cluster 2x1", 3: "256x64x64 cluster 2x1",
                4: "128x128x64 cluster 2x1", 5: "256x128x64 cluster 2x1", 6: "128x256x64 cluster 2x1"}  # all cooperative, stream-K
W4A16_WIDE_N = 16384  # gate_up (28672) is wide; qkv (6144), o / down (4096) are not


def w4a16_forced() -> int | None:
    name = os.environ.get("QLINEAR_CUTLASS_W4A16_TILE")
    if not name:
        return None
    if name not in W4A16_TILES:
        raise ValueError(f"QLINEAR_CUTLASS_W4A16_TILE: expected one of {sorted(W4A16_TILES)}, got {name!r}")
    return W4A16_TILES[name]


def w4a16_tile_for(m: int, n: int) -> int:
    wide = n >= W4A16_WIDE_N
    if m <= 16:
        return W4A16_TILES["m16w" if wide else "m16"]
    if m <= 64:
        return W4A16_TILES["m64w" if wide else "m64"]
    if m <= 128 or (not wide and m <= 256):
        return W4A16_TILES["m128w" if wide else "m128"]
    return W4A16_TILES["m256"]


# ---- the W4A16 decode kernel (csrc/w4a16_decode.cuh) on the GEMM's own weight, M <= 16 ----------
# Up to this many rows a W4A16 call whose shape the kernel takes (w4a16_decode_applies) runs it instead
# of the GEMM; 0 turns it off (A/B), 16 is the kernel's limit. Read once, at import.
W4A16_DECODE_MAX_M = min(16, env_int("QLINEAR_CUTLASS_W4A16_DECODE_MAX_M", 16, minimum=0))
# Launch it as a programmatic dependent of the kernel before it (sm_90+): its first weight loads
# overlap that kernel's tail. 0 turns it off (A/B).
PDL = env_int("QLINEAR_CUTLASS_PDL", 1, minimum=0)
DECODE_TILE_N, DECODE_CHUNK_K = 64, 128  # output columns of a block, k of a warp's chunk


def w4a16_decode_max_m(n: int, k: int, bits: int = 4) -> int:
    """Rows up to which an N x K layer of ``bits``-bit codes takes the decode kernel instead of the GEMM:
    W4A16_DECODE_MAX_M, but 8 where at M 9..16 (one block for all 16 rows of x: ~190 registers, half the
    warps an SM) the GEMM is faster: 4-bit codes on wide layers (N >= W4A16_WIDE_N), 8-bit codes on
    layers above 6144 x 4096. H200, graph us per call, g128 bf16, decode / GEMM
    (docs/results/gpu/lease11/sweep-w4.json, sweep-w8.json):
      4-bit M=9:  6144x4096 10.2 / 16.3, 4096x4096 8.6 / 15.1, 28672x4096 28.4 / 29.0, 4096x14336 16.8 / 24.8
      4-bit M=16: 6144x4096 11.2 / 16.6, 4096x4096 9.9 / 15.4, 28672x4096 33.7 / 29.0, 4096x14336 20.1 / 25.1
      8-bit M=8:  6144x4096 13.2 / 17.0, 4096x4096 9.4 / 15.7, 28672x4096 37.1 / 37.7, 4096x14336 20.4 / 26.1
      8-bit M=16: 6144x4096 16.3 / 16.9, 4096x4096 13.2 / 15.5, 28672x4096 52.7 / 38.0, 4096x14336 29.5 / 26.3"""
    large = n >= W4A16_WIDE_N if bits == 4 else n * k > 6144 * 4096
    return min(W4A16_DECODE_MAX_M, 8) if large else W4A16_DECODE_MAX_M


def float_decode_applies(m: int, n: int, k: int, bits: int) -> bool:
    """The shapes the float-code decode kernel takes (csrc/w4a16_api.h float_decode_applies, which the
    binding checks): 1 <= M <= 16, 64-column tiles, whole chunks (any group: 16 or 32)."""
    return 1 <= m <= 16 and n % DECODE_TILE_N == 0 and k % decode_chunk_k(bits) == 0


def float_decode_max_m(n: int, k: int, bits: int) -> int:
    """Rows up to which a float-code layer (E2M1: bits 4, E4M3: 8) takes the decode kernel
    (csrc/float_decode.cuh) instead of the GEMM: the integer codes' rule (w4a16_decode_max_m). H200,
    graph us per call, decode / GEMM (docs/results/gpu/lease14/sweep-nvfp4.json, sweep-mxfp8.json):
      NVFP4 M=8:  6144x4096 12.9 / 17.5, 4096x4096 9.2 / 15.9, 28672x4096 34.1 / 33.2, 4096x14336 19.1 / 27.0
      NVFP4 M=16: 6144x4096 15.6 / 17.6, 4096x4096 12.0 / 15.7, 28672x4096 50.2 / 33.2, 4096x14336 27.5 / 26.7
      MXFP8 M=16: 6144x4096 15.5 / 17.1, 4096x4096 12.7 / 15.7, 28672x4096 55.3 / 41.9, 4096x14336 28.9 / 26.9"""
    return w4a16_decode_max_m(n, k, bits)


# Act-order: from this many rows x's columns are gathered by blocks per row staged in shared memory
# (csrc/act_order_gather.cuh gather_rows_kernel), below a thread per element. H200, graph us per gather
# (sixteenth lease, tools.cutlass_w4a16_gather_bench; per element / staged / index_select): K=4096 M=64
# 2.2 / 1.7 / 4.9, M=256 6.0 / 3.0 / 6.5, M=1024 21.0 / 5.7 / 15.9; K=14336 M=16 2.6 / 2.0 / 5.1, M=64
# 6.5 / 3.1 / 7.0, M=256 22.7 / 7.4 / 23.8. In the decode step at M=16 the staged kernel was no faster
# (act-order step 568 against 562 us with the per-element one, which overlaps the decode kernel through PDL).
W4A16_GATHER_STAGED_MIN_M = 32


def decode_chunk_k(bits: int) -> int:
    """k a warp of the decode kernel loads at once: 8 k blocks of int4 codes, 4 of int8 (the same 32
    registers in flight); K must be a multiple of it."""
    return DECODE_CHUNK_K if bits == 4 else DECODE_CHUNK_K // 2


def w4a16_decode_applies(m: int, n: int, k: int, group: int, bits: int = 4) -> bool:
    """The shapes the decode kernel takes (csrc/w4a16_api.h w4a16_decode_applies / w8a16_decode_applies,
    which the binding checks): 1 <= M <= 16, 64-column tiles, whole chunks, groups of whole 64-k blocks."""
    return 1 <= m <= 16 and n % DECODE_TILE_N == 0 and k % decode_chunk_k(bits) == 0 and k % group == 0 and group % 64 == 0


def w4a16_decode_planes(m: int, n: int, k: int, sm_count: int, bits: int = 4) -> int:
    """An upper bound of the K slices the decode launcher picks (one wave of resident blocks over the
    column tiles, at most 4 blocks an SM, one block per column tile for all M <= 16 rows; at most one
    slice per chunk): the fp32 [M, N] planes its split-K workspace needs."""
    return max(1, min(k // decode_chunk_k(bits), 4 * sm_count // max(1, n // DECODE_TILE_N)))


# ---- W4A8 (csrc/w4a8.cuh w4a8cfg::Small / Mid / Large; ids W4A8Config in csrc/w4a8_api.h) -------
# The W4A16 shapes with a 128-deep K tile (128 bytes of FP8 x per row, as W4A16's 64 of 16-bit x).
# From the H200 sweep (tools/cutlass_w4a8_bench.py, each tile forced, group 128, us on 6144x4096 /
# 4096x4096 / 28672x4096 / 4096x14336; docs/results/gpu/lease8): M=16 small 19.5 / 18.7 / 34.8 / 31.5
# (mid 24.0 / 22.0 / 40.9 / 40.3); M=128 mid 22.5 / 22.0 / 43.4 / 37.7 (small 20.2 / 20.3 / 64.4 / 39.6,
# large 27.4 / 26.7 / 62.1 / 77.3); M=512 large 28.9 / 28.4 / 100.7 / 83.7 against mid 40.1 / 24.6 /
# 127.6 / 72.2: the 128x256 tile wins only where its tiles fill the SMs. So above M=256 the large tile
# is taken when (N / 128) * ceil(M / 256) output tiles reach 2/3 of a wave of 132 SMs (6144 and 28672
# at M=512; every shape from M=1024), else mid. ``QLINEAR_CUTLASS_W4A8_TILE`` forces one for sweeps.
W4A8_SHAPES = {SMALL: "128x64x128 cluster 2x1 (cooperative, stream-K)", MID: "128x128x128 cluster 2x1 (cooperative, stream-K)",
               LARGE: "128x256x128 cluster 2x1 (cooperative, persistent)"}
W4A8_SMALL_MAX_M = 64
W4A8_MID_MAX_M = 256
W4A8_LARGE_MIN_TILES = 88  # 2/3 of the H200's 132 SMs


def w4a8_forced() -> int | None:
    return forced("QLINEAR_CUTLASS_W4A8_TILE")


def w4a8_tile_for(m: int, n: int) -> int:
    if m <= W4A8_SMALL_MAX_M:
        return SMALL
    if m <= W4A8_MID_MAX_M or -(-n // 128) * -(-m // 256) < W4A8_LARGE_MIN_TILES:
        return MID
    return LARGE
