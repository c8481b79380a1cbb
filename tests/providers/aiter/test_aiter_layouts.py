"""aiter weight/scale transforms on CPU: the (16, 16) pre-shuffle against an independent inverse (and
against aiter's own ``shuffle_weight`` when amd-aiter is installed), the e4m3fn -> e4m3fnuz
conversion against the values it must keep, and the activation quantizers."""

import importlib.metadata
import importlib.util

import pytest
import torch

from qlinear_aiter import activation as A
from qlinear_aiter.layouts import (FN, FNUZ, e4m3fn_to_fnuz, shuffle_weight, shuffled_position, unshuffle_weight)


@pytest.mark.parametrize("dtype", [torch.int8, torch.float8_e4m3fn, torch.float8_e4m3fnuz])
@pytest.mark.parametrize("nk", [(16, 32), (48, 96), (256, 512)])
def test_shuffle_round_trips_through_the_independent_inverse(dtype, nk):
    g = torch.Generator().manual_seed(nk[0])
    raw = torch.randint(0, 256, nk, generator=g, dtype=torch.int32).to(torch.uint8)
    if dtype == torch.float8_e4m3fnuz:
        raw[raw == 0x80] = 0  # NaN in fnuz
    w = raw.view(dtype)
    s = shuffle_weight(w)
    assert s.shape == w.shape and s.dtype == dtype and s.is_contiguous()
    assert not torch.equal(s.view(torch.uint8), w.view(torch.uint8))  # it moved bytes
    assert torch.equal(unshuffle_weight(s).view(torch.uint8), raw)
    assert torch.equal(torch.sort(s.view(torch.uint8).flatten())[0], torch.sort(raw.flatten())[0])  # a permutation


def test_shuffle_positions_by_hand():
    """Tile of 16 rows x 32 bytes; columns 0-15 of its 16 rows first, then columns 16-31."""
    n, k = 32, 64
    w = torch.arange(n * k, dtype=torch.int32).reshape(n, k)
    flat_pos = shuffled_position(torch.arange(n).unsqueeze(1).expand(n, k), torch.arange(k).unsqueeze(0).expand(n, k), k)
    assert sorted(flat_pos.flatten().tolist()) == list(range(n * k))  # a bijection
    expect = {(0, 0): 0, (0, 15): 15, (1, 0): 16, (15, 15): 255, (0, 16): 256, (1, 16): 272, (0, 32): 512, (16, 0): 1024}
    for (r, c), pos in expect.items():
        assert int(flat_pos[r, c]) == pos, ((r, c), int(flat_pos[r, c]), pos)
    s = shuffle_weight((w % 256).to(torch.uint8).view(torch.int8))
    assert int(s.view(torch.uint8).flatten()[256]) == int(w[0, 16] % 256)


def test_shuffle_rejects_bad_shapes_naming_the_field():
    with pytest.raises(ValueError, match="weight.shape"):
        shuffle_weight(torch.zeros(17, 32, dtype=torch.int8))
    with pytest.raises(ValueError, match="weight.shape"):
        shuffle_weight(torch.zeros(16, 48, dtype=torch.int8))
    with pytest.raises(ValueError, match="weight.dtype"):
        shuffle_weight(torch.zeros(16, 32, dtype=torch.bfloat16))


def _aiter_shuffle_module():
    """aiter's ops/shuffle.py, loaded on its own (it imports only torch), from an installed amd-aiter."""
    try:
        dist = importlib.metadata.distribution("amd-aiter")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("amd-aiter is not installed")
    path = next((f for f in dist.files or [] if str(f).replace("\\", "/").endswith("aiter/ops/shuffle.py")), None)
    if path is None:
        pytest.skip("amd-aiter has no aiter/ops/shuffle.py")
    spec = importlib.util.spec_from_file_location("aiter_ops_shuffle_standalone", dist.locate_file(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("dtype", [torch.int8, torch.float8_e4m3fn])
def test_shuffle_matches_aiters_own(dtype):
    mod = _aiter_shuffle_module()
    w = torch.randint(-100, 100, (64, 256), dtype=torch.int8).view(torch.uint8)
    w = (w & 0x7F).view(dtype) if dtype != torch.int8 else w.view(torch.int8)
    theirs = mod.shuffle_weight(w, layout=(16, 16))
    assert torch.equal(shuffle_weight(w).view(torch.uint8), theirs.view(torch.uint8))


def test_fnuz_conversion_keeps_every_value():
    b = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    w = b.view(FN)
    finite = torch.isfinite(w.float())
    s = torch.tensor(0.37)
    wz, sz = e4m3fn_to_fnuz(w, s)
    assert wz.dtype == FNUZ and float(sz) == pytest.approx(0.74)
    got, want = wz.float() * sz, w.float() * s
    assert torch.equal(got[finite], want[finite])  # bit-exact: same bytes, scale x2
    assert float(wz.view(torch.uint8)[0x80]) == 0 and torch.isfinite(wz.float()[finite]).all()  # -0 -> +0, no NaN
    s_block = torch.rand(2, 4)
    assert torch.equal(e4m3fn_to_fnuz(w[:8].reshape(2, 4), s_block)[1], s_block * 2)
    with pytest.raises(ValueError, match="weight.dtype"):
        e4m3fn_to_fnuz(torch.zeros(4, dtype=torch.int8), s)


@pytest.mark.parametrize("dtype,fmax", [(FN, 448.0), (FNUZ, 224.0)])
def test_activation_quantizers_decode_back(dtype, fmax):
    x = torch.randn(5, 256) * 3
    q, s = A.fp8_per_token(x, dtype)
    assert q.dtype == dtype and s.shape == (5, 1) and float(q.float().abs().max()) <= fmax
    assert torch.allclose(q.float() * s, x, rtol=0.07, atol=1e-3)
    q, s = A.fp8_groups(x, dtype)
    assert s.shape == (5, 2) and torch.allclose(q.float() * s.repeat_interleave(128, 1), x, rtol=0.07, atol=1e-3)
    static = x.abs().max() / 448.0  # an e4m3fn static scale from the checkpoint
    q, s = A.fp8_per_tensor(x, dtype, static)
    assert float(s) == pytest.approx(float(static) * (2.0 if dtype == FNUZ else 1.0))
    assert torch.allclose(q.float() * s, x, rtol=0.07, atol=float(s))
    qi, si = A.int8_symmetric(x, None)
    assert qi.dtype == torch.int8 and si.shape == (5, 1) and torch.allclose(qi.float() * si, x, atol=float(si.max()))
