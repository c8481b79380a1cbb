"""Tile and split choices (pure Python: no triton needed)."""

import pytest

from qlinear_triton.configs import GemvTile, Tile, fixed_split, gemv_split, split_k, w4a16_split, w4a16_tile, w8a8_tile


@pytest.mark.parametrize("k,bk,tiles", [(4096, 128, 64), (4096, 512, 512), (513 * 4, 512, 1), (128, 128, 4)])
def test_gemv_split_covers_k(k, bk, tiles):
    splits, per = gemv_split(tiles, k, bk, 132, 8)
    assert per % bk == 0 and (splits - 1) * per < k <= splits * per


def test_w8a8_decode_tile_by_width():
    """One-row GEMV: 8 x 512 on layers up to 8 column tiles per SM, 16 x 256 beyond (measured)."""
    assert w8a8_tile(1, 4096, 4096, 132) == GemvTile(1, 8, 512, 2, 4, 1)
    assert w8a8_tile(1, 14336, 4096, 132) == GemvTile(1, 16, 256, 2, 4, 1)
    assert isinstance(w8a8_tile(2, 4096, 4096, 132), Tile)


def test_w4a16_tiles():
    assert w4a16_tile(1, 4096, 4096, 128) == GemvTile(1, 64, 128, 16, 2, 1)
    assert w4a16_tile(2, 4096, 4096, 128) == GemvTile(2, 64, 128, 8, 4, 1)
    assert [w4a16_tile(m, 4096, 4096, 128).bm for m in (16, 32, 64)] == [16, 32, 64]  # tiles as tall as M


@pytest.mark.parametrize("n", [4096, 14336])
@pytest.mark.parametrize("m", [3, 16, 32, 64])
def test_w4a16_tiles_split_k_in_eight_to_m16_then_four_to_m64(n, m):
    tiles = -(-n // 64)
    if m <= 16:  # 128-wide tiles, split in 8
        assert w4a16_split(m, tiles, 4096) == (8, 512)
        assert w4a16_split(m, tiles, 4100) == (7, 640)  # per split a multiple of the 128-row block
    else:
        assert w4a16_split(m, tiles, 4096) == (4, 1024)
        assert w4a16_split(m, tiles, 4100) == (4, 1152)
    assert w4a16_split(m, tiles, 512) == split_k(m, tiles, 512, 128)  # short K: the general rule


def test_w4a16_split_beyond_m64_is_the_general_rule():
    assert w4a16_split(128, 8, 4096) == split_k(128, 8, 4096, 128)


def test_fixed_split_covers_k_in_bk_multiples():
    """A pinned split count (pin_tile, for tuning sweeps): slices are BK multiples that cover K."""
    for k, splits, bk in ((4096, 4, 128), (4096, 3, 128), (512, 8, 128), (1000, 2, 64), (256, 1, 128)):
        n, per = fixed_split(k, splits, bk)
        assert per % bk == 0 and n * per >= k > (n - 1) * per and n <= splits, (k, splits, bk, n, per)
