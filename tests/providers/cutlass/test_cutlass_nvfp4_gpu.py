"""GPU tests of the CUTLASS SM100 NVFP4 kernel, for a B200 / GB200 (cc 10.0); they skip everywhere else,
which is every machine this project has had (the kernel is UNVERIFIED): the conformance kit on the
default configs and larger layers, CUDA-graph replay equal to eager and bit-identical repeats, and the
activation quantizer bit for bit against the format's reference (codes and 128x4-laid scales)."""

import pytest
import torch

pytest.importorskip("qlinear_cutlass")

from qlinear import testing  # noqa: E402
from qlinear.config import NvFp4LinearLayerConfig  # noqa: E402
from qlinear.formats.micro import quantize_nvfp4  # noqa: E402
from qlinear.formats.swizzle import round_up, swizzle_128x4  # noqa: E402
from qlinear.layers import make_layer  # noqa: E402
from qlinear_cutlass.nvfp4 import CutlassNvFp4LinearKernel as K  # noqa: E402


def _is_b200_class():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (10, 0)


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _is_b200_class(), reason="needs a cc 10.0 (B200 / GB200) GPU")]
LARGER = [NvFp4LinearLayerConfig((1024, 2048)), NvFp4LinearLayerConfig((1536, 1024), torch.float16),
          NvFp4LinearLayerConfig((264, 512), torch.bfloat16, torch.float16)]


@pytest.mark.parametrize("case", testing.cases_for(K, ms=(1, 7, 33, 128, 300)), ids=str)
def test_conformance(case):
    testing.run_case(K, case, device="cuda")


@pytest.mark.parametrize("case", testing.cases_for(K, ms=(64, 257, 1024), configs=LARGER), ids=str)
def test_larger_layers(case):
    testing.run_case(K, case, device="cuda")


def test_kit_and_bad_inputs():
    testing.check_kernel(K, device="cuda", min_ran=2)
    testing.check_bad_inputs(K, device="cuda")


def test_cuda_graph_replay_equals_eager_and_is_deterministic():
    c = LARGER[0]
    params, x, bias = testing.make_case_layer(testing.Case(c, 200), "cuda", 0)
    layer = make_layer(c, params)
    k = K.create(c)
    k.process_weights_after_loading(layer)
    eager = k.apply(layer, x, bias)
    assert torch.equal(eager, k.apply(layer, x, bias))
    graph, out = testing.capture_graph(lambda: k.apply(layer, x, bias))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16])
def test_quantizer_is_the_reference_bit_for_bit(dt):
    from qlinear_cutlass.build import load_nvfp4_extension

    ext = load_nvfp4_extension()
    m, kk = 77, 512
    x = torch.randn(m, kk, dtype=dt, device="cuda") * torch.rand(m, 1, device="cuda").to(dt) * 10
    gs = torch.tensor([448 * 6 / 20.0], device="cuda")
    q = torch.empty(m, kk // 2, dtype=torch.uint8, device="cuda")
    sf = torch.empty(round_up(m, 128), kk // 16, dtype=torch.uint8, device="cuda")
    ext.quant_nvfp4(x, gs, q, sf)
    rq, rs, _ = quantize_nvfp4(x.cpu(), gs.cpu())  # the reference on CPU (true division)
    assert torch.equal(q.cpu(), rq)
    assert torch.equal(sf.cpu(), swizzle_128x4(rs.view(torch.uint8)))
