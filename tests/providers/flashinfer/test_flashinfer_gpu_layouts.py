"""Our pure-torch layouts against flashinfer's own functions, on the GPU machine (where flashinfer imports).
shuffle_matrix_a is a torch gather in flashinfer; the 128x4 interleave is a JIT-built CUDA op
(compiled on first call). These are what make the unverified SM100 NVFP4/MX kernels' weight layouts
trustworthy without an SM100 card."""

import pytest
import torch

from qlinear_flashinfer import layouts as L
from qlinear_flashinfer import library

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _lib():
    mod, why = library.library()
    if mod is None:
        pytest.skip(why)
    return mod


def _find(mod, *names):
    for n in names:
        for where in (mod, getattr(mod, "fp4_quantization", None), getattr(mod, "utils", None)):
            f = getattr(where, n, None) if where is not None else None
            if f is not None:
                return f
    pytest.skip(f"flashinfer has none of {names}")


def test_shuffle_matrix_a_matches_flashinfer():
    fi = _find(_lib(), "shuffle_matrix_a")
    w = torch.randint(0, 255, (256, 64), dtype=torch.uint8, device="cuda")
    assert torch.equal(fi(w, 128), L.shuffle_matrix_a(w, 128))
    assert torch.equal(fi(w, 64), L.shuffle_matrix_a(w, 64))


def test_128x4_interleave_matches_flashinfer():
    fi = _find(_lib(), "nvfp4_block_scale_interleave", "block_scale_interleave")
    s = torch.randint(0, 255, (256, 32), dtype=torch.uint8, device="cuda")
    got = fi(s)
    assert torch.equal(got.reshape(-1).cpu(), L.swizzle_128x4(s).reshape(-1).cpu())


def test_shuffle_matrix_sf_a_matches_flashinfer():
    fi = _find(_lib(), "shuffle_matrix_sf_a")
    s = torch.randint(0, 255, (256, 32), dtype=torch.uint8, device="cuda")
    got = fi(s, 128)
    assert torch.equal(got.reshape(-1).cpu(), L.shuffle_matrix_sf_a(s, 128).reshape(-1).cpu())
