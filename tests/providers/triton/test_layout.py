"""Load-time re-lays of the triton provider, checked exactly against layouts built by hand."""

import pytest
import torch

from qlinear.formats.int_pack import pack_along
from qlinear_triton.mp import act_order, permute_k, repack_scales, repack_w4, repack_zero_points
from qlinear_triton.scaled_mm import flat_scale, weight_nk


def _codes(n, k, seed=0):
    return torch.randint(0, 16, (n, k), generator=torch.Generator().manual_seed(seed), dtype=torch.int32)


@pytest.mark.parametrize("k", [256, 200])
def test_repack_w4_exact_layout(k):
    n = 24
    codes = _codes(n, k)
    packed = pack_along(codes, 4, 1)  # compressed-tensors [N, K/8]
    out = repack_w4(packed, k)
    kp = -(-k // 128) * 128
    assert out.shape == (kp // 8, n) and out.dtype == torch.int32 and out.is_contiguous()
    # expected word (16 b + r, n): code of row 128 b + 16 j + r at bits 4j (0 past K), element by element
    for wr in range(kp // 8):
        b, r = divmod(wr, 16)
        for col in range(n):
            word = 0
            for j in range(8):
                row = 128 * b + 16 * j + r
                word |= (int(codes[col, row]) if row < k else 0) << (4 * j)
            if word >= 1 << 31:
                word -= 1 << 32
            assert int(out[wr, col]) == word, (wr, col)


def test_repack_zero_points_exact():
    n, g = 16, 5
    zp = _codes(n, g, seed=1)
    packed = pack_along(zp, 4, 0)  # [N/8, G] packed along N
    out = repack_zero_points(packed, n)
    assert out.dtype == torch.uint8 and out.shape == (g, n)
    assert torch.equal(out.to(torch.int32), zp.t())


def test_repack_scales():
    s = torch.randn(8, 3, dtype=torch.bfloat16)
    out = repack_scales(s, torch.float16)
    assert out.shape == (3, 8) and out.is_contiguous() and out.dtype == torch.float16
    assert torch.equal(out, s.t().to(torch.float16))


def test_act_order_permutation_regroups_k():
    k, g = 64, 16
    gen = torch.Generator().manual_seed(2)
    perm0 = torch.randperm(k, generator=gen)
    g_idx = torch.empty(k, dtype=torch.int32)
    g_idx[perm0] = (torch.arange(k) // g).to(torch.int32)  # GPTQ act-order
    perm, gsorted = act_order(g_idx, k, g)
    assert gsorted is None  # groups become contiguous k // g blocks
    assert torch.equal(g_idx[perm.long()], (torch.arange(k) // g).to(torch.int32))
    codes = _codes(4, k, seed=3)
    assert torch.equal(permute_k(pack_along(codes, 4, 1), perm), pack_along(codes[:, perm.long()], 4, 1))


def test_act_order_uneven_groups_keep_lookup():
    g_idx = torch.tensor([1, 0, 0, 0, 1, 1, 0, 1], dtype=torch.int32)  # two groups of 4: sorting regroups them
    perm, gsorted = act_order(g_idx, 8, 4)
    assert gsorted is None and torch.equal(g_idx[perm.long()], torch.tensor([0] * 4 + [1] * 4, dtype=torch.int32))
    g_idx = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1], dtype=torch.int32)  # 3 + 5: not size-4 blocks
    perm, gsorted = act_order(g_idx, 8, 4)
    assert gsorted is not None and torch.equal(gsorted, g_idx)


def test_weight_nk_is_the_storage_without_copy():
    w = torch.randint(-128, 127, (6, 10), dtype=torch.int8)  # [N, K]
    kn = w.t()  # as loaded: [K, N] view
    nk = weight_nk(kn)
    assert nk.data_ptr() == w.data_ptr() and torch.equal(nk, w)
    # a non-view [K, N] gets copied into [N, K] K-contiguous
    nk2 = weight_nk(kn.contiguous())
    assert torch.equal(nk2, w) and nk2.stride() == (10, 1)


def test_flat_scale():
    assert flat_scale(torch.tensor([2.0]), 5, "weight_scale")[1] is False
    s, per_col = flat_scale(torch.arange(5.0).reshape(5, 1), 5, "weight_scale")
    assert per_col and s.shape == (5,)
    with pytest.raises(ValueError, match="weight_scale.shape"):
        flat_scale(torch.ones(3, 1), 5, "weight_scale")
    # a fused module's per-part scales become per-column
    s, per_col = flat_scale(torch.tensor([1.0, 2.0]), 5, "weight_scale", logical_widths=[2, 3])
    assert per_col and s.tolist() == [1.0, 1.0, 2.0, 2.0, 2.0]
