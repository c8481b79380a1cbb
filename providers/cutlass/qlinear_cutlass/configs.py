"""Tile configuration per M bucket, chosen at call time from the one compiled module.

The ids are ``TileConfig`` in ``csrc/scaled_mm_api.h``; the shapes live in ``csrc/scaled_mm.cuh``
(``cfg::Small`` / ``Mid`` / ``Large``). Three instantiations per (family, output dtype) keep the build
near a minute. The bucket edges follow the tile heights: a 64-row tile up to M = 128, then 128-row
tiles. Unmeasured on our H200 until the provider's gpu_check.sh runs; ``QLINEAR_CUTLASS_TILE`` forces
one (small / mid / large) for sweeps.
"""

from __future__ import annotations

import os

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


# ---- W4A16 (csrc/w4a16.cuh w4cfg::Small / Mid / Large; ids W4A16Config in csrc/w4a16_api.h) ------
# Tiles are (weight rows) x (token rows) of the transposed GEMM: the token side grows with M so each
# int4 weight tile is converted once per 64 / 128 / 256 rows. Buckets from the H200 sweep
# (tools/cutlass_w4a16_bench.py, each tile forced, GPTQ g128, us on 4096x14336 / 4096x4096 / 6144x4096):
# M=64 small 29.6 / 17.9 / 19.5 (mid 40.4 / 22.7 / 24.9); M=256 mid 53.5 / 23.6 / 27.9 (large 138 / 41.9 /
# 42.0: 128x256 tiles leave most SMs idle on narrow layers); M=512 mid 92.6 / 28.2 / 47.8 (large 146 / 41.8
# / 42.9); M=1024 large 147 / 44.6 / 87.6 (mid 180 / 54.8 / 81.3), and large on 28672x4096 (324 vs 392).
# ``QLINEAR_CUTLASS_W4A16_TILE`` forces one for sweeps.
W4A16_SHAPES = {SMALL: "128x64x64 cluster 2x1 (cooperative, stream-K)", MID: "128x128x64 cluster 2x1 (cooperative, stream-K)",
                LARGE: "128x256x64 cluster 2x1 (cooperative, persistent)"}
W4A16_SMALL_MAX_M = 64
W4A16_MID_MAX_M = 512


def w4a16_forced() -> int | None:
    return forced("QLINEAR_CUTLASS_W4A16_TILE")


def w4a16_tile_for(m: int) -> int:
    return tile_for(m, W4A16_SMALL_MAX_M, W4A16_MID_MAX_M)
