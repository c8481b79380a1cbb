"""The fused activation quantizers (qlinear_triton.quant) against qlinear.formats, bit for bit.
On CPU they run through Triton's interpreter; on a GPU, compiled (the same assertions)."""

import pytest
import torch

from qlinear.formats import fp8 as _fp8
from qlinear.formats import int8 as _int8


def _cpu(t):
    return t.cpu() if isinstance(t, torch.Tensor) else t


def quantize_fp8_activation(x, *a, **kw):
    """The reference, always computed on the CPU: torch's CUDA division by a scalar multiplies by
    the reciprocal (1 ulp off IEEE), which the kernels' div_rn does not copy."""
    return _fp8.quantize_fp8_activation(_cpu(x), *a, **{k: _cpu(v) for k, v in kw.items()})


def quantize_int8_activation(x, symmetric, *a):
    return _int8.quantize_int8_activation(_cpu(x), symmetric, *map(_cpu, a))

DEV = "cuda" if torch.cuda.is_available() else "cpu"
# (M, K): one-pass rows, a ragged K, and a row longer than the one-pass limit (two-pass loop)
SHAPES = [(3, 100), (5, 513), (2, 9000)] + ([(257, 4096), (33, 14336)] if DEV == "cuda" else [])


@pytest.fixture(scope="module")
def Q():
    from qlinear_triton import quant

    return quant


def _x(m, k, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * 3
    x[0, : min(k, 5)] = 0
    if m > 1:
        x[1] = x[1].abs()  # a row with no negative value (asymmetric: min clamps to 0)
    if m > 2:
        x[2] = 0  # an all-zero row: MIN_SCALE / 1e-10 clamps
    return x.to(dtype).to(DEV)


def _eq(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    if a.dtype == torch.float8_e4m3fn:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    assert torch.equal(a.cpu(), b.cpu())


@pytest.mark.parametrize("m,k", SHAPES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp8_per_token(Q, m, k, dtype):
    x = _x(m, k, dtype)
    q, s = Q.quant_fp8_per_token(x)
    qr, sr = quantize_fp8_activation(x, "token")
    _eq(q, qr), _eq(s, sr)
    ub = torch.tensor([1.25], device=DEV)
    q, s = Q.quant_fp8_per_token(x, scale_ub=ub)
    qr, sr = quantize_fp8_activation(x, "token", scale_ub=ub)
    _eq(q, qr), _eq(s, sr)


@pytest.mark.parametrize("m,k", SHAPES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_int8_per_token(Q, m, k, symmetric):
    x = _x(m, k)
    q, s, zp = Q.quant_int8_per_token(x, symmetric)
    qr, sr, zr = quantize_int8_activation(x, symmetric)
    _eq(q, qr), _eq(s, sr)
    assert (zp is None) == symmetric
    if not symmetric:
        _eq(zp, zr)


def test_int8_ties_round_half_even(Q):
    # scale = 127 / 127 = 1 exactly, so x / s lands on .5 ties: torch.round goes to even
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5]], device=DEV)
    q, s, _ = Q.quant_int8_per_token(x)
    assert q.cpu().tolist() == [[127, 0, 2, 2, 0, -2, -2, 4]]


@pytest.mark.parametrize("m,k", SHAPES)
@pytest.mark.parametrize("column_major", [False, True])
def test_fp8_per_group(Q, m, k, column_major):
    x = _x(m, k)
    q, s = Q.quant_fp8_per_group(x, 128, column_major=column_major)
    qr, sr = quantize_fp8_activation(x, "group", group=128)
    _eq(q, qr)
    assert torch.equal(s.cpu(), sr.cpu())
    if column_major:
        assert s.stride() == (1, m)


@pytest.mark.parametrize("m,k", SHAPES)
def test_fp8_per_tensor_and_static(Q, m, k):
    x = _x(m, k)
    q, s = Q.quant_fp8_per_tensor(x)
    qr, sr = quantize_fp8_activation(x, "tensor")
    _eq(q, qr), _eq(s, sr)
    sc = torch.tensor([0.01], device=DEV)  # small: many values saturate at +-448
    _eq(Q.quant_fp8_static(x, sc), quantize_fp8_activation(x, "tensor", scale=sc)[0])


@pytest.mark.parametrize("m,k", SHAPES)
def test_int8_static(Q, m, k):
    x = _x(m, k)
    sc = torch.tensor([0.03], device=DEV)
    zp = torch.tensor([-7], dtype=torch.int32, device=DEV)
    _eq(Q.quant_int8_static(x, sc), quantize_int8_activation(x, True, sc)[0])
    _eq(Q.quant_int8_static(x, sc, zp), quantize_int8_activation(x, False, sc, zp)[0])


def test_bad_input(Q):
    with pytest.raises(ValueError, match="x.shape"):
        Q.quant_fp8_per_token(torch.zeros(2, 3, 4, device=DEV))
    with pytest.raises(ValueError, match="group"):
        Q.quant_fp8_per_group(torch.zeros(2, 256, device=DEV), 100)
