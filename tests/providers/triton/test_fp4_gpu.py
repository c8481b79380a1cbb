"""NVFP4 / MXFP4 weight-only (the W4A16 kernels' FP4 switch) compiled on a CUDA GPU: the conformance
kit on every path (GEMV M = 1, 2; split-K tiles 16, 33, 64; dense dequantize + cuBLAS from 128) on
the kit's layers and on K = 4096 layers, bad inputs, CUDA-graph capture and bit-identical repeats.
Mirrors test_gpu.py (which leaves the FP4 classes to this file)."""

import pytest
import torch

from qlinear import testing
from qlinear.config import MxFp4LinearLayerConfig, NvFp4LinearLayerConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

fp4 = pytest.importorskip("qlinear_triton.fp4")
KERNELS = fp4.KERNELS
IDS = [k.__name__ for k in KERNELS]
# exact decode: only the 16-bit output rounding and fp32 sum order remain (see test_fp4.py)
TOL = 4e-3


def _usable(k):
    ok, why = k.is_supported()
    if not ok:
        pytest.skip(why)


def _cfg(kernel, n, k, dt=torch.bfloat16):
    return (NvFp4LinearLayerConfig if kernel.family == "nvfp4" else MxFp4LinearLayerConfig)((n, k), dt)


def _check(kernel, cases):
    results = testing.check_kernel(kernel, device="cuda", cases=cases, min_ran=len(cases))
    bad = [(str(r.case), r.error) for r in results if r.ran and r.error > TOL]
    assert not bad, bad
    return results


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_kit(kernel):
    _usable(kernel)
    _check(kernel, testing.cases_for(kernel, ms=(1, 2, 16, 33, 64, 130)))


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_bad_inputs(kernel):
    _usable(kernel)
    testing.check_bad_inputs(kernel, device="cuda")


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_real_sizes(kernel):
    """Every M bucket on K = 4096 layers: N = 1024 splits K at decode; 4096 wide does not; fp16 too."""
    _usable(kernel)
    cfgs = [_cfg(kernel, 1024, 4096), _cfg(kernel, 4096, 4096), _cfg(kernel, 1024, 4096, torch.float16),
            _cfg(kernel, 4096, 14336)]
    _check(kernel, testing.cases_for(kernel, ms=(1, 2, 16, 64, 1025), configs=cfgs))


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_cuda_graph_capture_and_repeat(kernel):
    _usable(kernel)
    from qlinear.layers import make_layer

    for m in (1, 16):  # the GEMV's in-kernel split-K finish, and the tiles' split-K reduce
        case = testing.cases_for(kernel, ms=(m,), configs=[_cfg(kernel, 1024, 4096)])[0]
        params, x, bias = testing.make_case_layer(case, "cuda")
        layer = make_layer(case.config, params)
        kern = kernel.create(case.config)
        kern.process_weights_after_loading(layer)
        eager = kern.apply_weights(layer, x, bias)  # compiles outside the capture
        assert torch.equal(kern.apply_weights(layer, x, bias), eager)  # deterministic
        _, out = testing.capture_graph(lambda: kern.apply_weights(layer, x, bias))
        assert torch.equal(out, eager)


def test_marlin_selected_over_these_on_hopper():
    """On sm_90 the FP4 weight-only layers select marlin's kernels (15) over these (14): measured
    faster on the H200 decode step; these stay the fallback where marlin cannot run."""
    from qlinear import select

    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("checks the Hopper choice")
    for kernel in KERNELS:
        sel = select(_cfg(kernel, 4096, 4096), evaluate_all=True)
        assert sel.kernel is not None and sel.kernel.priority >= kernel.priority, sel.explain()
        if any(k.provider == "marlin" for k in sel.viable):
            assert sel.kernel.provider == "marlin", sel.explain()
