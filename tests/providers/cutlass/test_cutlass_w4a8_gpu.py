"""GPU tests of the CUTLASS W4A8 kernel (H100/H200 only): the conformance kit for every default config
the kernel accepts, larger layers at M in 64, 127, 256, 1024 with every tile forced, bad inputs,
CUDA-graph replay equal to eager and bit-identical repeats, strided x rows, the per-token quantizer
bit for bit against the reference."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import W4A8LinearLayerConfig  # noqa: E402
from qlinear.formats.fp8 import quantize_fp8_activation  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear_cutlass.w4a8 import CutlassW4A8LinearKernel as W  # noqa: E402


def _is_h100_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_h100_class(), reason="needs a cc 9.0 (Hopper) GPU")]
BF, FP = torch.bfloat16, torch.float16
MS = (1, 7, 33, 64, 127)
LARGE_MS = (64, 127, 256, 1024)

# Several N tiles, many K tiles; groups 128 / 256 / channel, bf16 / fp16 in and out.
LARGER = [W4A8LinearLayerConfig((1024, 2048), 128), W4A8LinearLayerConfig((1536, 1024), 256, FP),
          W4A8LinearLayerConfig((512, 4096), -1), W4A8LinearLayerConfig((2048, 512), 128, BF, FP),
          W4A8LinearLayerConfig((400, 1024), 128), W4A8LinearLayerConfig((272, 1152), -1, FP)]  # N not a multiple of 128


@pytest.mark.parametrize("case", testing.cases_for(W, ms=MS), ids=str)
def test_conformance(case):
    testing.run_case(W, case, device="cuda")


@pytest.mark.parametrize("case", testing.cases_for(W, ms=LARGE_MS, configs=LARGER), ids=str)
def test_larger_layers(case):
    testing.run_case(W, case, device="cuda")


@pytest.mark.parametrize("tile", ["small", "mid", "large"])
@pytest.mark.parametrize("case", testing.cases_for(W, ms=(3, 127, 300), configs=LARGER[:2]), ids=str)
def test_every_tile_config(case, tile, monkeypatch):
    monkeypatch.setenv("QLINEAR_CUTLASS_W4A8_TILE", tile)
    testing.run_case(W, case, device="cuda")


def test_kit_and_bad_inputs():
    results = testing.check_kernel(W, device="cuda", min_ran=4)
    accepted = sum(bool(W.can_implement(c.config)[0]) for c in testing.cases_for(W))
    assert sum(r.ran for r in results) == accepted  # every accepted kit case ran
    testing.check_bad_inputs(W, device="cuda")


def _layer(c, m, seed=0):
    params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda", seed)
    layer = make_layer(c, params)
    k = W.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x, bias


@pytest.mark.parametrize("c", LARGER[:3], ids=lambda c: c.describe())
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
    n, kk = c.weight_shape
    k, layer, x, bias = _layer(c, 96)
    ref = k.apply(layer, x, bias)
    wide = torch.zeros(96, kk + 64, dtype=x.dtype, device="cuda")
    wide[:, 32:32 + kk] = x
    assert torch.equal(k.apply(layer, wide[:, 32:32 + kk], bias), ref)  # a column slice (strided rows)
    assert torch.equal(k.apply(layer, x.reshape(8, 12, kk), bias).reshape(96, -1), ref)
    testing.check_leading_dims(W, c, device="cuda")


@pytest.mark.parametrize("dt", [BF, FP])
def test_quantizer_is_the_reference_bit_for_bit(dt):
    from qlinear_cutlass.build import load_w4a8_extension

    ext = load_w4a8_extension()
    x = torch.randn(77, 1024, dtype=dt, device="cuda") * torch.rand(77, 1, device="cuda").to(dt) * 10
    x[5] = 0  # an all-zero row takes the minimum scale
    q = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device="cuda")
    s = torch.empty(77, dtype=torch.float32, device="cuda")
    ext.quant_fp8_per_token(x, q, s)
    rq, rs = quantize_fp8_activation(x.cpu(), "token")  # on CPU: torch's CUDA x / 448 multiplies by 1/448
    assert torch.equal(s.cpu(), rs.reshape(-1))
    assert torch.equal(q.cpu().view(torch.uint8), rq.view(torch.uint8))
