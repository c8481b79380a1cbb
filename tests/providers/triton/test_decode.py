"""The GEMV kernels' in-register weight decoders, each against an independent decode of every code.

The W4A16 nibble decoders run on CPU through the interpreter and compiled on CUDA; the FP8 and INT8
inline-PTX paths (paired e4m3 conversion, dp4a) exist only compiled, so they are checked on the GPU.
"""

import pytest
import torch

from .conftest import HAS_CUDA

DEV = "cuda" if HAS_CUDA else "cpu"
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="inline PTX: needs a CUDA device")


pytest.importorskip("triton")
from qlinear_triton import mm_kernels as MM  # noqa: E402 - after the interpreter switch (conftest)
from qlinear_triton import w4a16_kernels as W  # noqa: E402
from qlinear_triton.quant_kernels import load, tl  # noqa: E402

triton = load()


@triton.jit
def nib_kernel(w_ptr, magic, out_ptr, PAIR: tl.constexpr, N: tl.constexpr):
    r = tl.arange(0, N)
    w = tl.load(w_ptr + r)
    for j in tl.static_range(8):
        if PAIR:
            if j < 4:
                lo, hi = W._nib_pair(w, j, magic)
                tl.store(out_ptr + j * N + r, lo)
                tl.store(out_ptr + (j + 4) * N + r, hi)
        else:
            tl.store(out_ptr + j * N + r, W._nib(w, j, magic))


@triton.jit
def e4m3_kernel(w_ptr, out_ptr, N: tl.constexpr):
    r = tl.arange(0, N)
    b0, b1, b2, b3 = MM._e4m3_word(tl.load(w_ptr + r))
    tl.store(out_ptr + r * 4, b0)
    tl.store(out_ptr + r * 4 + 1, b1)
    tl.store(out_ptr + r * 4 + 2, b2)
    tl.store(out_ptr + r * 4 + 3, b3)


@triton.jit
def dp4a_kernel(w_ptr, a_ptr, c_ptr, out_ptr, N: tl.constexpr):
    r = tl.arange(0, N)
    tl.store(out_ptr + r, MM._dp4a(tl.load(w_ptr + r), tl.load(a_ptr + r), tl.load(c_ptr + r)))


def _words_with_every_nibble_pair():
    """256 words: nibbles p and p + 4 run over every (lo, hi) pair, the other nibbles vary too."""
    lo = torch.arange(256) % 16
    hi = torch.arange(256) // 16
    words = torch.zeros(256, dtype=torch.int64)
    for p in range(4):
        words |= ((lo + 3 * p) % 16) << (4 * p) | ((hi + 5 * p) % 16) << (4 * p + 16)
    return words.to(torch.int32)  # wraps bit 31 into the sign, as in the packed weights


def _codes(words):
    w = words.to(torch.int64) & 0xFFFFFFFF
    return torch.stack([(w >> (4 * j)) & 0xF for j in range(8)]).double()  # [8, N]


@pytest.mark.parametrize("pair", [False, True], ids=["nib", "nib_pair"])
def test_w4_nibble_decode(pair):
    """_nib gives 1 + q/16 exactly. _nib_pair gives lo = 1 + q/128 exactly and hi = 1 + q/128 plus
    at most 15 * 2^-23 (the lo code left in hi's low mantissa bits): the documented bound."""
    from qlinear_triton.mp import ONE_BITS

    words = _words_with_every_nibble_pair().to(DEV)
    out = torch.empty(8, 256, dtype=torch.float32, device=DEV)
    nib_kernel[(1,)](words, ONE_BITS, out, PAIR=pair, N=256)
    q = _codes(words.cpu())
    got = out.cpu().double()
    if not pair:
        assert torch.equal(got, 1 + q / 16)
        return
    assert torch.equal(got[:4], 1 + q[:4] / 128)
    extra = got[4:] - (1 + q[4:] / 128)
    assert torch.equal(extra, q[:4] * 2.0**-23)  # exactly the lo code, so at most 15 * 2^-23
    assert float(extra.max()) <= 15 * 2.0**-23


@pytest.mark.gpu
@needs_cuda
def test_e4m3_word_decode():
    """Every E4M3 byte in every position of a word, against torch's float8_e4m3fn -> fp32."""
    codes = torch.arange(256, dtype=torch.uint8)
    # every byte in every position of a word: rotate the byte stream by 0..3
    stream = torch.cat([codes.roll(s) for s in range(4)])
    words = stream.view(torch.int32).to(DEV)
    out = torch.empty(stream.numel(), dtype=torch.float32, device=DEV)
    e4m3_kernel[(1,)](words, out, N=words.numel())
    ref = stream.view(torch.float8_e4m3fn).float()
    finite = ~ref.isnan()
    assert torch.equal(out.cpu()[finite], ref[finite])
    assert out.cpu()[~finite].isnan().all()


@pytest.mark.gpu
@needs_cuda
def test_dp4a():
    """dp4a against the integer dot product of the four signed bytes, plus the accumulator."""
    g = torch.Generator().manual_seed(0)
    w = torch.randint(-128, 128, (1024, 4), generator=g, dtype=torch.int8)
    a = torch.randint(-128, 128, (1024, 4), generator=g, dtype=torch.int8)
    c = torch.randint(-2**20, 2**20, (1024,), generator=g, dtype=torch.int32)
    out = torch.empty(1024, dtype=torch.int32, device="cuda")
    dp4a_kernel[(1,)](w.view(torch.int32).reshape(-1).cuda(), a.view(torch.int32).reshape(-1).cuda(), c.cuda(), out,
                      N=1024)
    ref = c + (w.int() * a.int()).sum(1)
    assert torch.equal(out.cpu(), ref)
