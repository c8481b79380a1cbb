"""Load-time weight transforms of the torch provider, checked as pure tensor code on CPU."""

import torch

from qlinear import MPLinearLayerConfig, scalar_types
from qlinear.formats.int_pack import pack_along, unpack_along
from qlinear_torch.mp import _tinygemm_scales_and_zeros, cuda_int4pack_input, tinygemm_group


def test_tinygemm_dequant_convention_on_cpu():
    """tinygemm computes x @ ((q - 8) * scale + zero)^T with scales_and_zeros [K/G, N, 2]."""
    g = torch.Generator().manual_seed(0)
    n, k, gs = 32, 128, 32
    q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.int32)
    s = torch.rand(k // gs, n, generator=g) + 0.5
    z = torch.randn(k // gs, n, generator=g)
    x = torch.randn(5, k, generator=g)
    w = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
    out = torch.ops.aten._weight_int4pack_mm_for_cpu(x, w, gs, torch.stack([s, z], -1))
    gi = torch.arange(k) // gs
    deq = (q.float() - 8) * s.t()[:, gi] + z.t()[:, gi]
    assert torch.allclose(out, x @ deq.t(), rtol=1e-5, atol=1e-4)


def test_zero_point_folds_into_tinygemm_zero():
    """uint4 with zero point z: (q - z) * s == (q - 8) * s + (8 - z) * s, regrouped to tinygemm groups."""
    g = torch.Generator().manual_seed(1)
    c = MPLinearLayerConfig((512, 64), (512, 64), scalar_types.uint4, torch.float32, -1, True, False)
    tg = tinygemm_group(c)
    assert tg == 256  # per channel over K=512 runs as two groups of 256 with the scale repeated
    q = torch.randint(0, 16, (64, 512), generator=g)
    s = torch.rand(64, 1, generator=g) + 0.1
    zp = torch.randint(0, 16, (64, 1), generator=g)
    sz = _tinygemm_scales_and_zeros(c, s, zp, tg, torch.float32)
    assert sz.shape == (512 // tg, 64, 2)
    gi = torch.arange(512) // tg
    tiny = (q.float() - 8) * sz[:, :, 0].t()[:, gi] + sz[:, :, 1].t()[:, gi]
    assert torch.allclose(tiny, (q - zp).float() * s, atol=1e-5)


def test_cuda_int4pack_input_nibble_order():
    """CUDA _convert_weight_to_int4pack (torch >= 2.5) takes uint8 [N, K/2], even k in the high nibble."""
    codes = torch.tensor([[1, 2, 3, 4, 15, 0, 7, 8]], dtype=torch.int32)
    u8 = cuda_int4pack_input(codes)
    assert u8.dtype == torch.uint8 and u8.shape == (1, 4)
    assert u8.tolist() == [[0x12, 0x34, 0xF0, 0x78]]
    # round trip from the compressed-tensors packing the kernel starts from
    rnd = torch.randint(0, 16, (16, 64), dtype=torch.int32)
    u = cuda_int4pack_input(unpack_along(pack_along(rnd, 4, 1), 4, 1))
    assert torch.equal((u >> 4).int(), rnd[:, 0::2]) and torch.equal((u & 0xF).int(), rnd[:, 1::2])


def test_tinygemm_group_choice():
    def cfg(k, gsz):
        return MPLinearLayerConfig((k, 64), (k, 64), scalar_types.uint4b8, torch.bfloat16, gsz, False, False)

    assert tinygemm_group(cfg(4096, 128)) == 128
    assert tinygemm_group(cfg(4096, -1)) == 256
    assert tinygemm_group(cfg(4096, 512)) == 256
    assert tinygemm_group(cfg(96, -1)) == 32
    assert tinygemm_group(cfg(4096, 16)) is None
