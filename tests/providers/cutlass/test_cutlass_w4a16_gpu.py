"""GPU tests of the CUTLASS W4A16 kernel (H100/H200 only): the conformance kit for every default config
the kernel accepts, larger layers at M in 64, 127, 256, 1024 with every tile forced, act-order, bad
inputs, CUDA-graph replay equal to eager, strided x rows."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import MPLinearLayerConfig  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear.scalar_type import scalar_types  # noqa: E402
from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel as W4  # noqa: E402


def _is_h100_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_h100_class(), reason="needs a cc 9.0 (Hopper) GPU")]
U4B8, U4 = scalar_types.uint4b8, scalar_types.uint4
BF, FP = torch.bfloat16, torch.float16
MS = (1, 7, 33, 64, 127)
LARGE_MS = (64, 127, 256, 1024)


def _mp(n, k, wt, dt, g, zp=False, gidx=False):
    return MPLinearLayerConfig((k, n), (k, n), wt, dt, g, zp, gidx)


# Several N tiles, many K tiles; GPTQ / AWQ, bf16 / fp16, groups 64 / 128 / channel, act-order.
LARGER = [_mp(1024, 2048, U4B8, BF, 128), _mp(1536, 1024, U4, FP, 64, True), _mp(512, 4096, U4B8, FP, -1),
          _mp(2048, 512, U4, BF, -1, True), _mp(768, 2048, U4B8, BF, 128, gidx=True), _mp(1024, 1024, U4, FP, 128, True, True),
          _mp(400, 1024, U4B8, BF, 128), _mp(272, 576, U4, FP, -1, True)]  # N not a multiple of the 128-row tile; K of 9 K tiles


@pytest.mark.parametrize("case", testing.cases_for(W4, ms=MS), ids=str)
def test_conformance(case):
    testing.run_case(W4, case, device="cuda")


@pytest.mark.parametrize("case", testing.cases_for(W4, ms=LARGE_MS, configs=LARGER), ids=str)
def test_larger_layers(case):
    testing.run_case(W4, case, device="cuda")


@pytest.mark.parametrize("tile", ["small", "mid", "large"])
@pytest.mark.parametrize("case", testing.cases_for(W4, ms=(3, 127, 300), configs=LARGER[:2]), ids=str)
def test_every_tile_config(case, tile, monkeypatch):
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A16_TILE", tile)
    testing.run_case(W4, case, device="cuda")


def test_kit_and_bad_inputs():
    results = testing.check_kernel(W4, device="cuda", min_ran=8)
    accepted = sum(bool(W4.can_implement(c.config)[0]) for c in testing.cases_for(W4))
    assert sum(r.ran for r in results) == accepted  # every accepted kit case ran
    testing.check_bad_inputs(W4, device="cuda")


def _layer(c, m, seed=0):
    params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda", seed)
    layer = make_layer(c, params)
    k = W4.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias


@pytest.mark.parametrize("c", [LARGER[0], LARGER[1], LARGER[4]], ids=lambda c: c.describe())
def test_cuda_graph_replay_equals_eager_and_is_deterministic(c):
    k, layer, x, bias = _layer(c, 200)
    eager = k.apply(layer, x, bias)
    assert torch.equal(eager, k.apply(layer, x, bias))  # bit-identical on repeat
    graph, out = testing.capture_graph(lambda: k.apply(layer, x, bias))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


def test_strided_rows_and_leading_dims():
    c = LARGER[0]
    k, layer, x, bias = _layer(c, 96)
    ref = k.apply(layer, x, bias)
    wide = torch.zeros(96, c.K + 64, dtype=x.dtype, device="cuda")
    wide[:, 32:32 + c.K] = x
    assert torch.equal(k.apply(layer, wide[:, 32:32 + c.K], bias), ref)  # a column slice (strided rows)
    assert torch.equal(k.apply(layer, x.reshape(8, 12, c.K), bias).reshape(96, -1), ref)
    testing.check_leading_dims(W4, c, device="cuda")
