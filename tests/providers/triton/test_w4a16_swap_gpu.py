"""The swapped W4A16 kernel (w4a16_swap_kernels) compiled on a CUDA GPU: the conformance kit with
every M routed to it, each candidate variant on a real-K layer against the old tile / dense path,
bit-identical repeats, and CUDA-graph capture."""

import copy

import pytest
import torch

from qlinear import testing

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _swap_everywhere():
    from qlinear_triton.mp import TritonW4A16LinearKernel

    return type("TritonW4A16LinearKernel", (TritonW4A16LinearKernel,), {"swap_min_m": 1, "swap_max_m": 1 << 30})


def test_swap_kit():
    kernel = _swap_everywhere()
    ok, why = kernel.is_supported()
    if not ok:
        pytest.skip(why)
    results = testing.check_kernel(kernel, device="cuda",
                                   cases=testing.cases_for(kernel, ms=(33, 127)))  # 2 tiles: compiles stay few
    assert sum(r.ran for r in results) >= 8


@pytest.mark.parametrize("variant", ["", "wide", "wideb"])  # PAIR / REG: CPU tests only (compile count)
@pytest.mark.parametrize("zp,group", [(False, 128), (True, 128), (False, 32), (True, 64), (False, -1)])
def test_swap_variants_gpu(variant, zp, group):
    from qlinear.config import MPLinearLayerConfig
    from qlinear.layers import quantize_layer_params
    from qlinear.scalar_type import scalar_types
    from qlinear.timing import prepare_kernel
    from qlinear_triton.configs import SwapTile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    n, k = 1536, 4096
    cfg = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4 if zp else scalar_types.uint4b8, torch.bfloat16,
                              group, zp, False)
    w = torch.randn(n, k, device="cuda") * 0.02
    params = quantize_layer_params(cfg, w, calib_x=torch.randn(64, k, device="cuda"))
    prep = prepare_kernel(TritonW4A16LinearKernel, cfg, [params], torch.device("cuda"))
    layer, kern = prep.layers[0], prep.kernels[0]
    old = copy.copy(kern)
    old.swap_max_m = 0
    for m in (16, 33, 64, 127, 128, 255):
        x = torch.randn(m, k, device="cuda").bfloat16()
        ref = old.apply(layer, x).float()
        bm = 64 if m <= 64 else 128
        kk = copy.copy(kern).pin_tile(SwapTile(bm, 128, 4 if bm == 64 else 8, 3, pair=variant == "pair",
                                               reg=variant == "reg", wide=variant == "wide",
                                               bmajor=variant == "wideb"))
        out = kk.apply(layer, x)
        err = float((out.float() - ref).norm() / ref.norm())
        assert err < 1e-2, (m, err)
        assert torch.equal(out, kk.apply(layer, x)), "not bit-identical on repeat"


def test_swap_graph_capture():
    from qlinear.config import MPLinearLayerConfig
    from qlinear.layers import quantize_layer_params
    from qlinear.scalar_type import scalar_types
    from qlinear.timing import prepare_kernel
    from qlinear_triton.mp import TritonW4A16LinearKernel

    n, k = 1024, 4096
    cfg = MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
    params = quantize_layer_params(cfg, torch.randn(n, k, device="cuda") * 0.02)
    prep = prepare_kernel(TritonW4A16LinearKernel, cfg, [params], torch.device("cuda"))
    layer, kern = prep.layers[0], prep.kernels[0]
    x = torch.randn(64, k, device="cuda").bfloat16()
    assert kern._mid_tile(64) is not None
    eager = kern.apply(layer, x)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = kern.apply(layer, x)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
