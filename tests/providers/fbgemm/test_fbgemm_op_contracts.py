"""The kernels' plumbing (weight re-layout, scale layouts, activation quantization, epilogues) run
through the conformance kit on CPU against stand-ins that compute exactly what each fbgemm op is
documented to compute (signatures from fbgemm's quantize_defs.cpp; semantics from its .cu sources
and bench/quantize_ops.py, cited per op). This checks OUR side of each call; the real ops are
checked by test_fbgemm_gpu.py on the H100. These stand-ins are test doubles, never shipped."""

import pytest
import torch

from qlinear import testing
from qlinear.formats.codes import to_e4m3
from qlinear.formats.fp8 import MIN_SCALE

import qlinear_fbgemm.fp8 as fp8_mod
import qlinear_fbgemm.fp8_block as block_mod
import qlinear_fbgemm.int8 as int8_mod
import qlinear_fbgemm.mp as mp_mod
from qlinear_fbgemm.int4_layout import dequantize_fbgemm_int4


def _bf16(t):
    return t.to(torch.bfloat16)


def quantize_fp8_per_row(x, bs=None, scale_ub=None):  # -> [xq, dequant scale [M]]
    amax = x.float().abs().amax(-1)
    if scale_ub is not None:
        amax = amax.clamp(max=scale_ub.float())
    s = (amax / 448.0).clamp(min=MIN_SCALE)
    return [to_e4m3(x.float() / s[:, None]), s]


def f8f8bf16_rowwise(xq, wq, xs, ws, bias=None, fast=True):  # f8f8bf16_rowwise.cu: acc * x_scale[m] * w_scale[n] + bias
    assert xq.dtype == wq.dtype == torch.float8_e4m3fn and xs.shape == (xq.shape[0],) and ws.shape == (wq.shape[0],)
    assert xs.dtype == ws.dtype == torch.float32 and wq.is_contiguous()
    out = (xq.double() @ wq.double().t()) * xs.double()[:, None] * ws.double()[None, :]
    if bias is not None:
        assert bias.dtype in (torch.bfloat16, torch.float32)
        out = out + bias.double()
    return _bf16(out)


def f8f8bf16_tensorwise(xq, wq, scale, fast=True):
    assert isinstance(scale, float)
    return _bf16((xq.double() @ wq.double().t()) * scale)


def f8f8bf16(xq, wq, scale, fast=True):
    assert isinstance(scale, torch.Tensor) and scale.numel() == 1
    return _bf16((xq.double() @ wq.double().t()) * scale.double())


def f8f8bf16_groupwise(xq, wq, x_scale, w_scale):
    # x_scale [K/128, M], w_scale [K/128, N/128] (MN-major): out = sum_k xq*x_scale[k//128, m]*wq*w_scale[k//128, n//128]
    m, k = xq.shape
    n = wq.shape[0]
    assert x_scale.shape == (k // 128, m) and w_scale.shape == (k // 128, n // 128)
    assert x_scale.is_contiguous() and w_scale.is_contiguous()
    xs = x_scale.double().t().repeat_interleave(128, 1)
    ws = w_scale.double().t().repeat_interleave(128, 0).repeat_interleave(128, 1)
    return _bf16((xq.double() * xs) @ (wq.double() * ws).t())


def i8i8bf16(xq, wq, scale, split_k=1):  # i8i8bf16.cu: LinearCombination{scale, 0} on the int32 accumulator
    assert xq.dtype == wq.dtype == torch.int8 and wq.is_contiguous() and isinstance(scale, float)
    return _bf16((xq.long() @ wq.long().t()).double() * scale)


def bf16i4bf16_rowwise(x, wq, w_scale, w_zp):  # q * scale + zp per group, X bf16
    assert x.dtype == torch.bfloat16 and wq.dtype == torch.int8 and w_scale.dtype == w_zp.dtype
    return _bf16(x.double() @ dequantize_fbgemm_int4(wq, w_scale, w_zp).t())


FAKES = {f.__name__: f for f in (quantize_fp8_per_row, f8f8bf16_rowwise, f8f8bf16_tensorwise, f8f8bf16,
                                 f8f8bf16_groupwise, i8i8bf16, bf16i4bf16_rowwise)}
KERNELS = [fp8_mod.FbgemmFp8RowwiseLinearKernel, fp8_mod.FbgemmFp8TensorwiseLinearKernel,
           block_mod.FbgemmFp8GroupwiseLinearKernel, int8_mod.FbgemmInt8LinearKernel, mp_mod.FbgemmW4A16LinearKernel]


@pytest.fixture
def fake_ops(monkeypatch):
    for mod in (fp8_mod, block_mod, int8_mod, mp_mod):
        monkeypatch.setattr(mod, "op", lambda name: FAKES[name])
    for k in KERNELS:
        monkeypatch.setattr(k, "is_supported", classmethod(lambda cls, platform=None: (True, None)))


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_plumbing_through_the_conformance_kit(kernel, fake_ops):
    results = testing.check_kernel(kernel, cases=testing.cases_for(kernel, ms=(1, 5)))
    assert sum(r.ran for r in results) >= 2


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs_name_the_field(kernel, fake_ops):
    testing.check_bad_inputs(kernel)


def test_wrong_layout_would_be_caught(fake_ops, monkeypatch):
    """The check has teeth: groupwise with K-major activation scales (the wrong layout) fails the kit."""
    from qlinear_fbgemm import activation

    real = activation.fp8_groups

    def k_major(x2, group=128):
        q, s = real(x2, group)
        return q, s.t().contiguous().t().reshape(s.shape[1], s.shape[0]).t()  # scrambles rows/cols when M>1

    monkeypatch.setattr(block_mod.A, "fp8_groups", k_major)
    with pytest.raises(AssertionError):
        testing.check_kernel(block_mod.FbgemmFp8GroupwiseLinearKernel,
                             cases=testing.cases_for(block_mod.FbgemmFp8GroupwiseLinearKernel, ms=(5,)))


def test_nvfp4_plumbing(monkeypatch):
    """f4f4bf16 (1.6.0 schema: XQ, WQ, x_scale, w_scale, output=None, global_scale=None): packed FP4
    operands, 2-D uint8 scales in the 128x4 layout, global_scale = alpha."""
    import qlinear_fbgemm.nvfp4 as nv
    from qlinear.formats.codes import e2m1_decode, e4m3_decode, unpack_fp4
    from qlinear.formats.swizzle import unswizzle_128x4

    def f4f4bf16(xq, wq, x_scale, w_scale, output=None, global_scale=None):
        assert output is None and global_scale is not None and x_scale.dtype == w_scale.dtype == torch.uint8
        m, n, k = xq.shape[0], wq.shape[0], xq.shape[1] * 2

        def deq(q, sw, rows):
            s = e4m3_decode(unswizzle_128x4(sw, rows, k // 16), torch.float64)
            return e2m1_decode(unpack_fp4(q), torch.float64) * s.repeat_interleave(16, 1)
        return _bf16((deq(xq, x_scale, m) @ deq(wq, w_scale, n).t()) * global_scale.double())

    monkeypatch.setattr(nv, "op", lambda name: {"f4f4bf16": f4f4bf16}[name])
    monkeypatch.setattr(nv.FbgemmNvFp4LinearKernel, "is_supported", classmethod(lambda cls, platform=None: (True, None)))
    testing.check_kernel(nv.FbgemmNvFp4LinearKernel, cases=testing.cases_for(nv.FbgemmNvFp4LinearKernel, ms=(1, 5)))
