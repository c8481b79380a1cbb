"""Fixtures for the flashinfer provider tests, and a stand-in ``flashinfer`` module for CPU tests: each function computes what the real one is
documented to compute (flashinfer/gemm/gemm_base.py docstrings; layouts per qlinear_flashinfer.layouts)
and records its calls. Test double only: it stands for no kernel."""

import types

import pytest
import torch

from qlinear.formats.codes import e2m1_decode, e4m3_decode, e8m0_decode, unpack_fp4
from qlinear.formats.fp8 import expand_blocks, quantize_fp8_activation

from qlinear_flashinfer import library
from qlinear_flashinfer.layouts import swizzle_128x4, unshuffle_matrix_a, unswizzle_128x4


def _backend_table(table):
    def is_backend_supported(backend, cc=None):
        if backend not in table:
            return False
        return True if cc is None else cc in table[backend]
    return is_backend_supported


def make(calls: list, backends=None):
    mod = types.ModuleType("flashinfer")
    backends = backends or {"cudnn": {100, 103, 110, 120, 121}, "trtllm": {100, 103, 107}, "cutlass": {100, 103, 110, 120, 121},
                            "b12x": {120, 121}, "cute-dsl": {100, 103, 107, 120, 121}}

    def bmm_fp8(A, B, A_scale, B_scale, dtype, out=None, backend="cublas"):
        calls.append(("bmm_fp8", backend))
        assert A.dtype == B.dtype == torch.float8_e4m3fn and A.dim() == B.dim() == 3
        assert B.stride(1) == 1, "B must be column-major"
        assert A_scale.numel() == 1 and B_scale.numel() == 1
        return ((A.double() @ B.double()) * A_scale.double() * B_scale.double()).to(dtype)
    bmm_fp8.is_backend_supported = _backend_table({"cublas": {89, 90, 100, 103, 120, 121}, "cudnn": {89, 90}})

    def fp8_blockscale_gemm_sm90(input, weight, input_scale=None, weight_scale=None, out=None, out_dtype=None):
        calls.append(("fp8_blockscale_gemm_sm90", input.shape[0]))
        assert input.dtype == torch.bfloat16 and weight.dtype == torch.float8_e4m3fn and input_scale is None
        n, k = weight.shape
        assert k % 128 == 0 and n % 64 == 0 and weight_scale.shape == (-(-n // 128), k // 128)
        q, s = quantize_fp8_activation(input, "group", group=128)
        xd = q.double() * expand_blocks(s.double(), (1, 128), q.shape)
        wd = weight.double() * expand_blocks(weight_scale.double(), (128, 128), weight.shape)
        return (xd @ wd.t()).to(out_dtype or torch.bfloat16)

    def _fp4(packed, sf_rows_cols, sf_swizzled, nvfp4):
        rows, cols = sf_rows_cols
        s = unswizzle_128x4(sf_swizzled, rows, cols)
        v = e2m1_decode(unpack_fp4(packed), torch.float64)
        blk = 16 if nvfp4 else 32
        sc = e4m3_decode(s.view(torch.uint8), torch.float64) if nvfp4 else e8m0_decode(s.view(torch.uint8)).double()
        return v * sc.repeat_interleave(blk, 1)[:, : v.shape[1]]

    def mm_fp4(a, b, a_descale, b_descale, alpha=None, out_dtype=torch.bfloat16, out=None, block_size=16,
               use_8x4_sf_layout=False, backend="cudnn", use_nvfp4=True):
        calls.append(("mm_fp4", backend))
        assert not use_8x4_sf_layout and block_size == (16 if use_nvfp4 else 32)
        if backend == "trtllm":
            assert out_dtype == torch.bfloat16
        if backend in ("cutlass", "cudnn"):
            assert a_descale.dtype == b_descale.dtype == torch.uint8
        m, kb = a.shape
        k = kb * 2
        w = b.t()  # [N, K/2]
        n = w.shape[0]
        cols = k // block_size
        w_sf = b_descale.t()
        if backend == "trtllm":
            w = unshuffle_matrix_a(w.contiguous())
            w_sf = unshuffle_matrix_a(unswizzle_128x4(w_sf.contiguous(), n, cols)).contiguous()
            w_sf = swizzle_128x4(w_sf)
        xa = _fp4(a, (m, cols), a_descale, use_nvfp4)
        wa = _fp4(w, (n, cols), w_sf, use_nvfp4)
        o = xa @ wa.t()
        if alpha is not None:
            o = o * alpha.double()
        return o.to(out_dtype)
    mm_fp4.is_backend_supported = _backend_table(backends)

    def mm_mxfp8(a, b, a_descale, b_descale, out=None, out_dtype=torch.bfloat16, backend="cutlass"):
        calls.append(("mm_mxfp8", backend))
        m, k = a.shape
        n = b.shape[1]
        assert a_descale.dim() == 1 and b_descale.dim() == 1 and b.stride(0) == 1
        assert a_descale.numel() == -(-m // 128) * 128 * -(-(k // 32) // 4) * 4
        xs = unswizzle_128x4(a_descale.reshape(-1, -(-(k // 32) // 4) * 4), m, k // 32)
        ws = unswizzle_128x4(b_descale.reshape(-1, k // 32), n, k // 32)
        xa = a.double() * e8m0_decode(xs).double().repeat_interleave(32, 1)
        wa = b.t().double() * e8m0_decode(ws).double().repeat_interleave(32, 1)
        return (xa @ wa.t()).to(out_dtype)
    mm_mxfp8.is_backend_supported = _backend_table({"cutlass": {100, 103, 110, 120, 121}, "trtllm": {100, 103}})

    for f in (bmm_fp8, fp8_blockscale_gemm_sm90, mm_fp4, mm_mxfp8):
        setattr(mod, f.__name__, f)
    mod.gemm = types.SimpleNamespace()
    return mod


@pytest.fixture(autouse=True)
def _fresh_flashinfer_caches():
    library.reset_caches()
    yield
    library.reset_caches()


@pytest.fixture
def make_fake_flashinfer():
    return make
