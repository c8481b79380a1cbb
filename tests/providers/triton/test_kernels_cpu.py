"""The conformance kit for every triton kernel, on CPU through Triton's interpreter (tiny shapes).

The kernels' platform gate refuses a CPU; ``runnable_here`` lifts it for these runs only. The same
kernels are checked compiled on CUDA in test_gpu.py.
"""

import dataclasses

import pytest

from qlinear import testing
from qlinear_triton import qlinear_kernels

from .conftest import interpreter_only, runnable_here

pytestmark = interpreter_only
MS = (1, 33)  # a decode row, and a ragged M that spans tiles


@pytest.mark.parametrize("kernel,case", testing.case_params(qlinear_kernels(), ms=MS))
def test_conformance_interpreted(kernel, case):
    res = testing.run_case(runnable_here(kernel), case, device="cpu")
    assert res.ran


def _dense_w4_cases():
    from qlinear_triton.mp import TritonW4A16LinearKernel

    dense = type("TritonW4A16LinearKernel", (TritonW4A16LinearKernel,), {"dense_min_m": 1})
    return [pytest.param(dense, c, id=str(c)) for c in testing.cases_for(dense, ms=(2,))
            if dense.can_implement(c.config)[0]]


@pytest.mark.parametrize("kernel,case", _dense_w4_cases())
def test_w4a16_dense_path_conformance(kernel, case):
    """The W4A16 prefill path (dequantize + cuBLAS), forced for every kit case."""
    assert testing.run_case(runnable_here(kernel), case, device="cpu").ran


@pytest.mark.parametrize("kernel", qlinear_kernels(), ids=lambda k: k.__name__)
def test_bad_inputs_interpreted(kernel):
    testing.check_bad_inputs(runnable_here(kernel), device="cpu")


def test_leading_dims_and_fp8_input():
    """x [B, T, K] keeps its leading dims; an FP8 x is taken with the layer's input_scale."""
    import torch

    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig
    from qlinear.formats import reference_linear
    from qlinear.layers import make_layer, quantize_layer_params
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel

    c = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8StaticTensorSym, (64, 128))
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 128, generator=g) * 0.05
    x = torch.randn(2, 3, 128, generator=g).bfloat16()
    params = quantize_layer_params(c, w, calib_x=x.reshape(-1, 128).float())
    layer = make_layer(c, params)
    K = runnable_here(TritonFP8ScaledMMLinearKernel)
    kern = K.create(c)
    kern.process_weights_after_loading(layer)
    out = kern.apply(layer, x)
    ref = reference_linear(c, params, x)
    assert out.shape == (2, 3, 64)
    assert float((out.double() - ref).norm() / ref.norm()) < 3e-2
    xq = (x.float() / params["input_scale"]).clamp(-448, 448).to(torch.float8_e4m3fn)
    out8 = kern.apply(layer, xq)
    ref8 = reference_linear(c, params, xq)
    assert out8.dtype == torch.bfloat16 and float((out8.double() - ref8).norm() / ref8.norm()) < 3e-2


@pytest.mark.parametrize("fused", [False, True], ids=["separate-quant", "quant-in-gemm"])
@pytest.mark.parametrize("m", [1, 9])
def test_fp8_per_token_scale_ub(m, fused):
    import torch

    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig
    from qlinear.formats import reference_linear
    from qlinear.layers import make_layer, quantize_layer_params
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel

    c = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (64, 160))
    g = torch.Generator().manual_seed(1)
    params = quantize_layer_params(c, torch.randn(64, 160, generator=g) * 0.05)
    params["input_scale_ub"] = torch.tensor([1.0])  # well below the rows' amax: saturates outliers
    x = (torch.randn(m, 160, generator=g) * 2).bfloat16()
    layer = make_layer(c, params)
    kern = runnable_here(TritonFP8ScaledMMLinearKernel).create(c)
    kern.fused_quant_max_m = 64 if fused else 0
    kern.process_weights_after_loading(layer)
    out = kern.apply(layer, x)
    ref = reference_linear(c, params, x)
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2
    no_ub = reference_linear(c, {k: v for k, v in params.items() if k != "input_scale_ub"}, x)
    assert float((no_ub - ref).norm() / ref.norm()) > 0.05  # the bound really changed the result


def _w4_layer(n, k, group, g_idx=None, zp=False, seed=0):
    """A hand-made W4A16 layer (codes, scales, optional irregular g_idx) and its float weight."""
    import torch

    from qlinear.config import MPLinearLayerConfig
    from qlinear.formats.int_pack import dequantize_wna16, pack_along
    from qlinear.layers import make_layer
    from qlinear.scalar_type import scalar_types

    gen = torch.Generator().manual_seed(seed)
    ng = (k // group) if group != -1 else 1
    if g_idx is not None:
        ng = int(g_idx.max()) + 1
    codes = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.int32)
    scales = (torch.rand(n, ng, generator=gen) * 0.02 + 0.005).bfloat16()
    wt = scalar_types.uint4 if zp else scalar_types.uint4b8
    params = {"weight_packed": pack_along(codes, 4, 1), "weight_scale": scales}
    if zp:
        params["weight_zero_point"] = pack_along(torch.randint(0, 16, (n, ng), generator=gen, dtype=torch.int32), 4, 0)
    if g_idx is not None:
        params["weight_g_idx"] = g_idx
    c = MPLinearLayerConfig((k, n), (k, n), wt, torch.bfloat16, group, zp, g_idx is not None)
    w = dequantize_wna16(wt, params["weight_packed"], scales, params.get("weight_zero_point"), g_idx, group)
    return c, make_layer(c, dict(params)), w


@pytest.mark.parametrize("path", ["gemv", "gemv-rows", "tiles", "dense"])
@pytest.mark.parametrize("group,k", [(-1, 96), (-1, 200), (32, 256), (64, 384), (128, 384), (256, 512)])
def test_w4a16_paths(group, k, path):
    """Every W4A16 path (GEMV at M=1, the GEMV's multi-row form, tensor-core tiles, dequantize +
    cuBLAS) over every group size, K not a multiple of the 128-row block included."""
    import torch

    from qlinear_triton.configs import GemvTile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    c, layer, w = _w4_layer(48, k, group, zp=group == 32)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    m = {"gemv": 1, "gemv-rows": 2, "tiles": 5, "dense": 5}[path]
    if path == "gemv-rows":
        kern.pin_tile(GemvTile(2, 64, 128, 1, 4, 1))
    kern.dense_min_m = 0 if path == "dense" else 1 << 30
    assert isinstance(kern.tile_for(m), GemvTile) == path.startswith("gemv")
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(1)).bfloat16()
    out = kern.apply(layer, x)
    ref = x.double() @ w.double().t()
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2


@pytest.mark.parametrize("m,dense", [(1, False), (3, False), (3, True)])
def test_w4a16_irregular_g_idx(m, dense):
    """Groups of unequal size (not k // group blocks after sorting): the kernels look groups up."""
    import torch

    from qlinear_triton.mp import TritonW4A16LinearKernel

    k, group = 128, 32
    g_idx = torch.tensor([0] * 20 + [1] * 44 + [2] * 32 + [3] * 32, dtype=torch.int32)
    g_idx = g_idx[torch.randperm(k, generator=torch.Generator().manual_seed(3))]
    c, layer, w = _w4_layer(32, k, group, g_idx=g_idx)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    kern.dense_min_m = 0 if dense else 1 << 30
    assert kern._has_gsorted
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(4)).bfloat16()
    out = kern.apply(layer, x)
    ref = x.double() @ w.double().t()
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2


def _fused_cases():
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel
    from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel

    out = []
    for k in (TritonInt8ScaledMMLinearKernel, TritonFP8ScaledMMLinearKernel):
        fused = type(k.__name__, (k,), {"fused_quant_max_m": 64})
        for case in testing.cases_for(k, ms=(3,)):
            c = case.config
            dynamic_token = (not c.is_static_input_scheme) if k.family == "int8" else \
                c.activation_quant_key.scale.group_shape.is_per_token()
            if dynamic_token:
                out.append(pytest.param(fused, case, id=f"{k.__name__}-{case}"))
    return out


@pytest.mark.parametrize("kernel,case", _fused_cases())
def test_quant_in_gemm_path(kernel, case):
    """The opt-in path that quantizes x per row inside the GEMM (A_MODE 2), through the kit."""
    assert testing.run_case(runnable_here(kernel), case, device="cpu").ran


def _split_cases():
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel
    from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel

    out = []
    for k, picks in ((TritonInt8ScaledMMLinearKernel, ("dyn-ch-asym", "static-tensor-asym", "dyn-tensor-sym")),
                     (TritonFP8ScaledMMLinearKernel, ("wper-channel-adynper-token", "astaticper-tensor"))):
        for case in testing.cases_for(k, ms=(1, 33)):
            if any(p in str(case) for p in picks) and "N255" in str(case):
                cases = [case]
                if case.m == 1:  # K % 4 == 0 too: the GEMV (K 513 hands M=1 to the 16-row tiles)
                    cases.append(dataclasses.replace(case, config=dataclasses.replace(case.config, weight_shape=(255, 516))))
                for c in cases:
                    for fused in ((0, 64) if c.m == 1 else (0,)):  # static too: A_MODE 1
                        out.append(pytest.param(k, c, fused, id=f"{k.__name__}-fused{fused}-{c}"))
    return out


@pytest.mark.parametrize("kernel,case,fused", _split_cases())
def test_split_k(kernel, case, fused, monkeypatch):
    """Decode on a narrow layer splits K across programs and sums the fp32 partials in a second
    kernel; forced here with a small BK so the tiny test layers qualify. M=1 runs the GEMV kernel."""
    from qlinear_triton import scaled_mm
    from qlinear_triton.configs import GemvTile, Tile

    gemv = case.m == 1 and case.config.shape_nk[1] % 4 == 0  # else the GEMV hands over to 16-row tiles
    name = "gemv_split" if gemv else "split_k"
    splits = []
    real = getattr(scaled_mm, name)
    monkeypatch.setattr(scaled_mm, name, lambda *a, **kw: (splits.append(real(*a, **kw)), splits[-1])[1])
    tile = GemvTile(1, 64, 64, 8, 4, 1) if case.m == 1 else Tile(16, 64, 64, 1, 4, 1)

    class Forced(runnable_here(kernel)):
        fused_quant_max_m = static_fused_max_m = fused

        def process_weights_after_loading(self, layer):
            super().process_weights_after_loading(layer)
            self._tiles.fn = lambda m, n, k, sms: tile

    Forced.__name__ = kernel.__name__
    made = []
    real_create = Forced.create.__func__
    Forced.create = classmethod(lambda cls, c: (made.append(real_create(cls, c)), made[-1])[1])
    assert testing.run_case(Forced, case, device="cpu").ran
    assert splits and splits[-1][0] > 1  # the split path really ran
    if gemv:  # the in-kernel finish left its arrival counters zeroed for the next call
        assert all(int(cnt.abs().sum()) == 0 for cnt, _ in made[-1]._tiles.counters.values())


@pytest.mark.parametrize("m", [1, 3])  # the GEMV kernel, the tensor-core kernel
@pytest.mark.parametrize("group,zp,gidx", [(128, False, False), (32, True, False), (64, False, True), (-1, False, False)])
def test_w4a16_split_k(group, zp, gidx, m, monkeypatch):
    """W4A16 decode split over K, bias added once, partials summed in order."""
    import torch

    from qlinear.config import MPLinearLayerConfig
    from qlinear.scalar_type import scalar_types
    from qlinear_triton import w4a16_launch
    from qlinear_triton.configs import GemvTile, Tile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    splits = []
    name = "gemv_split" if m == 1 else "w4a16_split"
    real = getattr(w4a16_launch, name)
    monkeypatch.setattr(w4a16_launch, name, lambda *a, **kw: (splits.append(real(*a, **kw)), splits[-1])[1])
    c = MPLinearLayerConfig((512, 128), (512, 128), scalar_types.uint4 if zp else scalar_types.uint4b8,
                            torch.bfloat16, group, zp, gidx)
    tile = GemvTile(1, 64, 128, 4, 4, 1) if m == 1 else Tile(16, 64, 128, 1, 4, 1)
    K = runnable_here(TritonW4A16LinearKernel)
    forced = type("TritonW4A16LinearKernel", (K,), {"_tile": lambda self, m: tile})
    made = []
    real_create = forced.create.__func__
    forced.create = classmethod(lambda cls, c: (made.append(real_create(cls, c)), made[-1])[1])
    assert testing.run_case(forced, testing.Case(c, m, with_bias=True), device="cpu").ran
    assert splits and splits[-1][0] > 1
    assert all(int(cnt.abs().sum()) == 0 for cnt, _ in made[-1]._counters.values())  # left zeroed for the next call


def _tool(name, monkeypatch):
    import importlib
    import pathlib

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parents[3]))  # the checkout's tools/ package
    return importlib.import_module(f"tools.{name}")


def test_sweep_decode_smoke(tmp_path, monkeypatch):
    """The GPU decode-sweep tool runs end to end (interpreter, tiny shape): every candidate tile,
    pinned split included, produces a result within tolerance of the reference."""
    import json

    assert _tool("triton_sweep_decode", monkeypatch).main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "sweep_decode.json").read_text())["rows"]
    assert {r["kind"] for r in rows} == {"w4a16", "fp8", "int8"} and any(r["splits"] for r in rows)
    assert all(r["error"] is None and r["rel_err"] < 0.02 for r in rows), rows


def _static_layers():
    """(id, kernel class, config) of the static-scale schemes: INT8 symmetric / asymmetric, FP8 per tensor."""
    from qlinear import quant_key as qk
    from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig
    from qlinear_triton.fp8 import TritonFP8ScaledMMLinearKernel
    from qlinear_triton.int8 import TritonInt8ScaledMMLinearKernel

    n, k = 72, 516  # K % 4 == 0: one row runs the GEMV kernel
    return [
        ("int8-sym", TritonInt8ScaledMMLinearKernel, Int8ScaledMMLinearLayerConfig(True, True, True, (n, k))),
        ("int8-asym", TritonInt8ScaledMMLinearKernel, Int8ScaledMMLinearLayerConfig(True, True, False, (n, k))),
        ("fp8-tensor", TritonFP8ScaledMMLinearKernel,
         FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (n, k))),
    ]


@pytest.mark.parametrize("fused_max_m,m", [(1, 1), (8, 5)], ids=["gemv", "tiles"])
@pytest.mark.parametrize("name,kernel,config", _static_layers(), ids=[t[0] for t in _static_layers()])
def test_static_quant_in_gemm_makes_non_finite_rows_nan(name, kernel, config, fused_max_m, m):
    check_static_quant_in_gemm(kernel, config, fused_max_m, m, "cpu")


def check_static_quant_in_gemm(kernel, config, fused_max_m, m, device):
    """Static scales quantized inside the GEMM (A_MODE 1): the same results as the separate
    quantizer, and a row holding inf or NaN comes out NaN from the kernel itself (a static scale
    clamps inf to a finite code), so apply / QuantLinear skip their own check at these M.
    (test_gpu.py runs it compiled.)"""
    import torch

    from qlinear.formats import reference_linear
    from qlinear.layers import make_layer, quantize_layer_params

    n, k = config.shape_nk
    g = torch.Generator().manual_seed(3)
    w = torch.randn(n, k, generator=g) * 0.05
    x = torch.randn(m, k, generator=g).bfloat16()
    params = {name: t.to(device) for name, t in quantize_layer_params(config, w, calib_x=x.float()).items()}
    x = x.to(device)
    layer = make_layer(config, params)

    class Fused(runnable_here(kernel)):
        static_fused_max_m = fused_max_m

    Fused.__name__ = kernel.__name__
    kern = Fused.create(config)
    kern.process_weights_after_loading(layer)
    assert kern.handles_non_finite(m) and not kern.handles_non_finite(fused_max_m + 1)
    separate = runnable_here(kernel).create(config)
    separate.static_fused_max_m = 0
    separate.process_weights_after_loading(make_layer(config, params))
    out = kern.apply(layer, x)
    ref = reference_linear(config, {n_: t.cpu() for n_, t in params.items()}, x.cpu()).to(device)
    assert float((out.double() - ref).norm() / ref.norm()) < 3e-2
    # the same codes as the separate quantizer: equal up to the GEMM's summation order
    torch.testing.assert_close(out, separate.apply_weights(layer, x), rtol=2e-2, atol=1e-3)
    bad = x.clone()
    bad[0, 7] = float("inf")
    if m > 1:
        bad[m - 1, 300] = float("nan")
    got = kern.apply_weights(layer, bad)  # the unchecked path: the kernel alone
    assert torch.isnan(got[0]).all() and torch.isnan(got[m - 1]).all()
    if m > 2:
        assert torch.isfinite(got[1:m - 1]).all()
        torch.testing.assert_close(got[1:m - 1], out[1:m - 1], rtol=2e-2, atol=1e-3)
