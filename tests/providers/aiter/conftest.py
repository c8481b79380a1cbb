"""Stand-ins for the aiter entry points, for CPU tests of the provider's gates and plumbing. Each
computes what the real function computes (aiter 0.1.7 sources: ``aiter/ops/gemm_op_a8w8.py``,
``gradlib.py``, the CK kernels under ``csrc/ck_gemm_a8w8*``) and checks the operand contract the
CK/hipBLASLt kernels rely on (dtypes, the arch's FP8 flavour, scale shapes). Test doubles only: they
stand for no kernel. The pre-shuffled weight is decoded with the provider's independent inverse."""

import types

import pytest
import torch

pytest.importorskip("qlinear_aiter", reason="the aiter provider (providers/aiter) is not installed")

from qlinear.formats.micro import dequantize_mxfp4  # noqa: E402

from qlinear_aiter import library  # noqa: E402
from qlinear_aiter.layouts import unshuffle_weight  # noqa: E402

_ARCH_FP8 = {"gfx942": torch.float8_e4m3fnuz, "gfx950": torch.float8_e4m3fn}


def make_fake_aiter(calls: list, arch: str):
    fp8 = _ARCH_FP8[arch]
    m = types.ModuleType("aiter")

    def _check_rowwise(xq, wq, xs, ws):
        assert xq.dtype == wq.dtype and xq.dtype in (torch.int8, fp8), (xq.dtype, wq.dtype, fp8)
        assert xs.dtype == ws.dtype == torch.float32
        assert xs.shape == (xq.shape[0], 1) and ws.shape == (1, wq.shape[0]), (xs.shape, ws.shape)
        assert wq.is_contiguous() and xq.shape[1] == wq.shape[1]

    def _rowwise(xq, wq, xs, ws):
        return (xq.double() @ wq.double().t()) * xs.double() * ws.double()

    def gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias=None, dtype=torch.bfloat16, splitK=None):
        calls.append("gemm_a8w8_CK")
        _check_rowwise(XQ, WQ, x_scale, w_scale)
        out = _rowwise(XQ, WQ, x_scale, w_scale)
        if bias is not None:
            assert bias.dtype == dtype, "CK: bias dtype must equal the output dtype"
            out = out + bias.double()
        return out.to(dtype)

    def gemm_a8w8_bpreshuffle(XQ, WQ, x_scale, w_scale, bias=None, dtype=torch.bfloat16, check=False):
        calls.append("gemm_a8w8_bpreshuffle")
        assert WQ.dtype == fp8 and bias is None and dtype in (torch.bfloat16, torch.float16)
        w = unshuffle_weight(WQ)
        _check_rowwise(XQ, w, x_scale, w_scale)
        return _rowwise(XQ, w, x_scale, w_scale).to(dtype)

    def gemm_a8w8_blockscale(XQ, WQ, x_scale, w_scale, dtype=torch.bfloat16, isBpreshuffled=False):
        calls.append("gemm_a8w8_blockscale")
        mm, k = XQ.shape
        n = WQ.shape[0]
        assert XQ.dtype == WQ.dtype == fp8 and not isBpreshuffled
        assert x_scale.shape == (mm, k // 128) and w_scale.shape == (-(-n // 128), k // 128)
        assert x_scale.is_contiguous() and w_scale.is_contiguous() and x_scale.dtype == w_scale.dtype == torch.float32
        xs = x_scale.double().repeat_interleave(128, 1)
        ws = w_scale.double().repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)
        return ((XQ.double() * xs) @ (WQ.double() * ws).t()).to(dtype)

    def hipb_create_extension():
        calls.append("hipb_create_extension")

    def hipb_mm(mat1, mat2, solution_index, bias=None, out_dtype=None, scaleA=None, scaleB=None, scaleOut=None, bpreshuffle=None):
        calls.append("hipb_mm")
        assert "hipb_create_extension" in calls, "hipb_mm before hipb_create_extension"
        assert mat1.dtype == mat2.dtype == fp8 and mat2.shape[0] == mat1.shape[1]
        assert mat2.stride(0) == 1, "B is the column-major [K, N] view of the [N, K] weight"
        assert scaleA.numel() == 1 and scaleB.numel() == 1 and scaleOut is None
        out = (mat1.double() @ mat2.double()) * scaleA.double() * scaleB.double()
        if bias is not None:
            out = out + bias.double()
        return out.to(out_dtype or mat1.dtype)

    def gemm_afp4wfp4(x, w, x_scales, w_scales, dtype=torch.bfloat16, y=None, config=None):
        calls.append("gemm_afp4wfp4")
        assert arch == "gfx950", "MXFP4 needs gfx950's FP4 matrix cores"
        mm, kh = x.shape
        assert x.dtype == w.dtype == torch.uint8 and w.shape[1] == kh and y is None
        assert x_scales.dtype == w_scales.dtype == torch.uint8
        assert x_scales.shape == (mm, kh * 2 // 32) and w_scales.shape == (w.shape[0], kh * 2 // 32)
        return (dequantize_mxfp4(x, x_scales, torch.float64) @ dequantize_mxfp4(w, w_scales, torch.float64).t()).to(dtype)

    for f in (gemm_a8w8_CK, gemm_a8w8_bpreshuffle, gemm_a8w8_blockscale, hipb_create_extension, hipb_mm, gemm_afp4wfp4):
        setattr(m, f.__name__, f)
    return m


@pytest.fixture(autouse=True)
def _fresh_library():
    library.reset_caches()
    yield
    library.reset_caches()


@pytest.fixture
def imports(monkeypatch):
    """Record every import the provider attempts; aiter is missing unless the test says otherwise."""
    state = {"calls": [], "mode": "missing", "arch": "gfx942", "op_calls": []}

    def fake_import(name, *a, **k):
        state["calls"].append(name)
        if state["mode"] == "missing":
            raise ModuleNotFoundError(f"No module named '{name}'")
        return make_fake_aiter(state["op_calls"], state["arch"])

    monkeypatch.setattr(library, "_import", fake_import)
    return state
