"""The emulation provider judged by an independent float64 reference.

For every family, layers from the conformance kit's default configs
(``qlinear.testing.default_configs``, as ``cases_for(EmulationXKernel)`` uses them; M in {1, 33}) are run through the emulation kernel, and the output is compared with
a float64 dequantize-then-matmul computed here from the as-loaded parameters by the independent
decoders of ``test_formats_spec.py`` (not by ``qlinear.formats.reference_linear``): weights decoded
from their codes and scales, activations quantized-dequantized the way the family's convention
says, then ``x @ W.T + bias`` in float64.

Tolerance: relative Frobenius error ||out - ref|| / ||ref|| <= 5e-3. The kernel computes in float32
and rounds its output to the 16-bit activation dtype (bf16 relative rounding 2**-9 ~ 2e-3 per
element, about 1e-3 in Frobenius norm); its float32 activation quantization may also pick the other
code where a value sits within an fp32 rounding of a code boundary (rare, one step).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from qlinear import testing
from qlinear_emulation import kernels as E


import qlinear_tests_formats_spec as S  # noqa: E402 - the independent decoders (tests/conftest.py)
TOL = 5e-3
MS = (1, 33)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _codes8(t: torch.Tensor) -> np.ndarray:
    """fp8 / uint8 tensor -> its byte codes (contiguous copy; transposed views included)."""
    return _np(t.contiguous().view(torch.uint8)).astype(np.int64)


# ---- independent weight decode (as-loaded layout -> float64 [N, K]) ---------------------------------------
def weight_f64(c, p) -> np.ndarray:
    fam = c.family
    if fam == "mp":
        wt = c.weight_type
        return S.wna16_dequant(wt.size_bits, wt.bias, _np(p["weight_packed"]), _np(p["weight_scale"].double()),
                               _np(p["weight_zero_point"]) if "weight_zero_point" in p else None,
                               _np(p["weight_g_idx"]) if "weight_g_idx" in p else None, c.group_size)
    if fam == "int8":
        w = _np(p["weight"].t().to(torch.int64)).astype(np.float64)  # stored [K, N]
        return w * _np(p["weight_scale"].double()).reshape(-1, 1)
    if fam == "fp8":
        w = S.E4M3_TABLE[_codes8(p["weight"].t())]
        return w * _np(p["weight_scale"].double()).reshape(-1, 1)
    if fam == "fp8_block":
        w = S.E4M3_TABLE[_codes8(p["weight"])]
        bn, bk = c.weight_block
        n, k = w.shape
        s = _np(p["weight_scale_inv"].double())
        return w * s[np.arange(n)[:, None] // bn, np.arange(k)[None, :] // bk]
    if fam == "nvfp4":
        return S.nvfp4_dequantize(S.unpack_nibbles(_np(p["weight"])), _codes8(p["weight_scale"]), float(p["weight_global_scale"]))
    if fam == "mxfp4":
        return S.mx_dequantize(S.unpack_nibbles(_np(p["weight"])), _np(p["weight_scale"]), "fp4")
    if fam == "mxfp8":
        return S.mx_dequantize(_codes8(p["weight"]), _np(p["weight_scale"]), "fp8")
    if fam == "w4a8":
        return S.w4a8_dequant(_np(p["weight_packed"]), _codes8(p["weight_scale"]), _np(p["weight_chan_scale"].double()),
                              c.group_size)
    raise AssertionError(fam)


# ---- independent activation quantize-dequantize ----------------------------------------------------------
def act_f64(c, p, x: np.ndarray, quantizes: bool) -> np.ndarray:
    fam = c.family
    if fam == "mp" or not quantizes:
        return x
    if fam == "int8":
        if c.is_static_input_scheme:
            zp = None if c.input_symmetric else int(p["input_zero_point"])
            return S.int8_act_qdq(x, c.input_symmetric, float(p["input_scale"]), zp)
        return S.int8_act_qdq(x, c.input_symmetric)
    if fam == "fp8":
        sc = c.activation_quant_key.scale
        if sc.group_shape.is_per_token():
            return S.fp8_act_qdq(x, "token")
        if sc.static:
            return S.fp8_act_qdq(x, "static", float(p["input_scale"]))
        return S.fp8_act_qdq(x, "tensor")
    if fam == "w4a8":
        return S.fp8_act_qdq(x, "token")
    if fam == "fp8_block":
        return S.fp8_act_qdq(x, "group", group=c.activation_quant_key.scale.group_shape.col)
    if fam == "nvfp4":
        codes, sc, gs = S.nvfp4_quantize(x, float(p["input_global_scale"]))
        return S.nvfp4_dequantize(codes, sc, gs)
    if fam == "mxfp4":
        return S.mx_dequantize(*S.mx_quantize(x, "fp4"), "fp4")
    raise AssertionError(fam)


def _cases():
    """Every default config of the kit, each once: M and bias alternate over the configs so that every
    family sees M=1 and M=33, with and without bias (the full product doubles the time for little)."""
    out = []
    for kern in E.KERNELS:
        for i, c in enumerate(testing.default_configs(kern.family)):
            case = testing.Case(c, MS[i % 2], with_bias=(i // 2) % 2 == 0)
            name = f"{kern.__name__.removeprefix('Emulation')}-{case}-{'bias' if case.with_bias else 'nobias'}"
            out.append(pytest.param(kern, case, id=name))
    return out


def _run(kern, case, seed=0):
    c = case.config
    params, x, bias = testing.make_case_layer(case, "cpu", seed)
    layer = testing.make_layer(c, params)
    k = kern.create(c)
    k.process_weights_after_loading(layer)
    return params, x, bias, layer, k.apply(layer, x, bias)


@pytest.mark.parametrize("kern,case", _cases())
def test_emulation_matches_independent_float64_reference(kern, case):
    c = case.config
    params, x, bias, layer, out = _run(kern, case)
    assert out.shape == (case.m, c.shape_nk[0]) and out.dtype == x.dtype
    w = weight_f64(c, params)
    xd = act_f64(c, params, _np(x.double()), kern.quantizes_activation)
    ref = xd @ w.T + (0.0 if bias is None else _np(bias.double()))
    o = _np(out.double())
    err = np.linalg.norm(o - ref) / np.linalg.norm(ref)
    assert err <= TOL, f"{case}: relative Frobenius error {err:.3e} > {TOL}"
    # the weight the emulation cached: exact for integer codes x 16-bit scales and for MX (power-of-two
    # scales); the fp32 products code * fp32 scale (INT8, FP8) and e2m1 * (s / gs) (NVFP4) round once or twice
    cached = _np(layer.qlinear_emulation_weight.double())
    if c.family in ("mp", "mxfp4", "mxfp8"):
        assert np.array_equal(cached, w)
    else:
        assert np.allclose(cached, w, rtol=2.0 ** -22, atol=0)


def test_activation_quantization_flags():
    # which emulation kernels quantize the activation is part of the numeric contract the test above uses
    assert {k.__name__: k.quantizes_activation for k in E.KERNELS} == {
        "EmulationMPLinearKernel": True,  # the default; MP activations stay 16-bit whatever the flag
        "EmulationInt8ScaledMMLinearKernel": True, "EmulationFP8ScaledMMLinearKernel": True,
        "EmulationFp8BlockScaledMMLinearKernel": True, "EmulationNvFp4LinearKernel": True,
        "EmulationMxFp4LinearKernel": True, "EmulationMxfp8LinearKernel": False,  # vLLM keeps MXFP8 activations 16-bit
        "EmulationW4A8LinearKernel": True,
    }
    assert {k.family for k in E.KERNELS} == {"mp", "int8", "fp8", "fp8_block", "nvfp4", "mxfp4", "mxfp8", "w4a8"}


def test_activation_quantization_matters():
    # the reference's activation step is not a no-op: without it the NVFP4 / MXFP4 error would be far over TOL
    kern = E.EmulationMxFp4LinearKernel
    case = testing.cases_for(kern, ms=(33,))[0]
    params, x, bias, layer, out = _run(kern, case)
    ref = _np(x.double()) @ weight_f64(case.config, params).T + (0.0 if bias is None else _np(bias.double()))
    err = np.linalg.norm(_np(out.double()) - ref) / np.linalg.norm(ref)
    assert err > 10 * TOL


@pytest.mark.parametrize("kern", E.KERNELS, ids=lambda k: k.__name__)
def test_emulation_leading_dims_and_out_dtype(kern):
    case = testing.cases_for(kern, ms=(6,))[0]
    params, x, bias, layer, out = _run(kern, case)
    k = kern.create(case.config)
    out3 = k.apply(layer, x.reshape(2, 3, -1), bias)
    assert out3.shape == (2, 3, case.config.shape_nk[0]) and out3.dtype == x.dtype
    assert torch.equal(out3.reshape(6, -1), out)


@pytest.mark.parametrize("kern", E.KERNELS, ids=lambda k: k.__name__)
def test_emulation_bad_inputs(kern):
    testing.check_bad_inputs(kern)


# ---- the shared test scaffolding providers adopt (qlinear.testing) -------------------------------
test_suite_conformance, test_suite_kit, test_suite_bad_inputs = testing.conformance_suite(
    [E.EmulationMxfp8LinearKernel], device="cpu", ms=(1,))


def test_case_params_keep_only_what_the_kernel_takes():
    from qlinear.kernel import Int8ScaledMMLinearKernel

    class OnlySymmetric(testing.StandIn, Int8ScaledMMLinearKernel):
        @classmethod
        def can_implement(cls, c):
            return (c.input_symmetric, "symmetric only")

    every = testing.case_params([OnlySymmetric], ms=(1,), implementable_only=False)
    kept = testing.case_params([OnlySymmetric], ms=(1,))
    assert 0 < len(kept) < len(every) and all(p.values[1].config.input_symmetric for p in kept)
    assert kept[0].id.startswith("OnlySymmetric-int8-")
