"""The triton kernels compiled on a CUDA GPU: the conformance kit for every kernel (the kit's
default cases include unaligned M=33, N=255, K=513 and asymmetric INT8), decode/prefill-sized
layers, bad inputs, and CUDA-graph capture (apply must not sync or allocate outside the pool)."""

import pytest
import torch

from qlinear import quant_key as qk
from qlinear import testing
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.scalar_type import scalar_types
from qlinear_triton import qlinear_kernels

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

KERNELS = [k for k in qlinear_kernels() if k.family not in ("nvfp4", "mxfp4")]  # FP4 weight-only: test_fp4_gpu.py
IDS = [k.__name__ for k in KERNELS]


def _usable(k):
    ok, why = k.is_supported()
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_kit(kernel):
    _usable(kernel)
    results = testing.check_kernel(kernel, device="cuda", cases=testing.cases_for(kernel, ms=(1, 33)))
    assert sum(r.ran for r in results) >= 4


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_bad_inputs(kernel):
    _usable(kernel)
    testing.check_bad_inputs(kernel, device="cuda")


def _big_configs(family):
    n, k = 1024, 4096  # real K, modest N keeps the float64 reference quick
    if family == "mp":
        return [MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False),
                MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4, torch.float16, 32, True, False),
                MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, True),
                MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, -1, False, False)]
    if family == "int8":
        return [Int8ScaledMMLinearLayerConfig(False, True, True, (n, k)),
                Int8ScaledMMLinearLayerConfig(False, True, False, (n, k)),
                Int8ScaledMMLinearLayerConfig(True, False, False, (255, k))]
    if family == "fp8":
        return [FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k)),
                FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (n, k)),
                FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTensorSym, (255, k))]
    return [FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k)),
            FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (255, 4160))]


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_real_sizes(kernel):
    """Every M bucket (decode, mid, prefill) on K=4096 layers; N=1024 is narrow enough that decode
    splits K (configs.split_k) for the W4A16 / INT8 / FP8 kernels."""
    _usable(kernel)
    cases = testing.cases_for(kernel, ms=(1, 64, 1025), configs=_big_configs(kernel.family))
    results = testing.check_kernel(kernel, device="cuda", cases=cases)
    assert sum(r.ran for r in results) == len(cases)


def _wide_config(family, n=4096, k=4096):
    if family == "mp":
        return MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
    if family == "int8":
        return Int8ScaledMMLinearLayerConfig(False, True, False, (n, k))
    if family == "fp8":
        return FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k))
    return FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k))


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_decode_wide_layer(kernel):
    """Decode on a 4096-wide layer: the no-split small-M tiles (the narrow layers above split K)."""
    _usable(kernel)
    cases = testing.cases_for(kernel, ms=(1, 16), configs=[_wide_config(kernel.family)])
    assert len(testing.check_kernel(kernel, device="cuda", cases=cases)) == 2


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_cuda_graph_capture(kernel):
    _usable(kernel)
    from qlinear.layers import make_layer

    case = next(c for c in testing.cases_for(kernel, ms=(4,)) if kernel.can_implement(c.config)[0])
    params, x, bias = testing.make_case_layer(case, "cuda")
    layer = make_layer(case.config, params)
    kern = kernel.create(case.config)
    kern.process_weights_after_loading(layer)
    eager = kern.apply_weights(layer, x, bias)  # compiles outside the capture
    _, out = testing.capture_graph(lambda: kern.apply_weights(layer, x, bias))
    assert torch.equal(out, eager)


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k.family in ("int8", "fp8")], ids=lambda k: k.__name__)
def test_quant_in_gemm(kernel):
    """The small-M paths that quantize x inside the GEMM (fused_quant_max_m, static_fused_max_m), compiled."""
    _usable(kernel)
    fused = type(kernel.__name__, (kernel,), {"fused_quant_max_m": 1 << 30, "static_fused_max_m": 1 << 30})
    # dynamic per-token scales (A_MODE 2) and static ones (A_MODE 1); per-tensor dynamic FP8 never fuses
    cases = [c for c in testing.cases_for(kernel, ms=(1, 16)) if kernel.can_implement(c.config)[0]
             and (kernel.family == "int8" or c.config.activation_quant_key.scale.group_shape.is_per_token()
                  or c.config.activation_quant_key.scale.static)]
    assert len(testing.check_kernel(fused, device="cuda", cases=cases)) == len(cases)


@pytest.mark.parametrize("fused_max_m,m", [(1, 1), (8, 5)], ids=["gemv", "tiles"])
@pytest.mark.parametrize("layer", range(3), ids=["int8-sym", "int8-asym", "fp8-tensor"])
def test_static_quant_in_gemm_non_finite(layer, fused_max_m, m):
    from .test_kernels_cpu import _static_layers, check_static_quant_in_gemm

    _, kernel, config = _static_layers()[layer]
    _usable(kernel)
    check_static_quant_in_gemm(kernel, config, fused_max_m, m, "cuda")


@pytest.mark.parametrize("scheme,m", [("w4a16-g128", 1), ("w4a16-g128", 16), ("w4a16-g128", 300), ("int8-dynamic", 1),
                                      ("int8-dynamic-asym", 64), ("fp8-dynamic", 16), ("fp8-block", 8)])
def test_fast_launch_matches_triton_launch(scheme, m):
    """Repeat launches go through launch.FastKernel's cache: an x whose address is not 16-byte aligned
    (Triton compiles another specialization for it) must get that kernel, not the cached aligned one,
    and every cached launch must give what Triton's own launch gives."""
    from qlinear.nn import QuantLinear
    from qlinear_triton import launch, mm_kernels, quant_kernels, w4a16_kernels

    assert isinstance(w4a16_kernels.w4a16_gemv_kernel, launch.FastKernel)
    torch.manual_seed(0)
    n, k = 512, 1024
    lin = torch.nn.Linear(k, n, dtype=torch.bfloat16, device="cuda")
    q = QuantLinear.from_linear(lin, scheme, calib_x=torch.randn(16, k, dtype=torch.bfloat16, device="cuda"))
    if q.kernel.backend != "triton":
        pytest.skip(f"{scheme}: {q.kernel.full_name()} selected")
    x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    ref = q(x)  # first call: Triton's launch (compiles, fills the cache)
    fast = [q(x) for _ in range(3)]  # cached launches
    buf = torch.empty(m * k + 1, dtype=torch.bfloat16, device="cuda")
    x_odd = buf[1:].view(m, k)  # 2-byte offset: not 16-byte aligned
    x_odd.copy_(x)
    assert x_odd.data_ptr() % 16 != 0
    odd = [q(x_odd) for _ in range(2)]
    torch.cuda.synchronize()
    for y in fast:  # the same compiled kernel on the same input: bit-identical
        torch.testing.assert_close(y, ref, rtol=0, atol=0)
    for y in odd:
        torch.testing.assert_close(y, ref, rtol=1e-2, atol=1e-2)
    kernels = [v for mod in (w4a16_kernels, mm_kernels, quant_kernels) for v in vars(mod).values() if isinstance(v, launch.FastKernel)]
    assert any(len(fk._compiled) >= 2 for fk in kernels), "the unaligned x must have its own cache entry"
    entries = sum(len(fk._compiled) for fk in kernels)
    for _ in range(20):  # a fresh output per call must hit the same entries (keyed by value it missed and leaked)
        q(x)
    assert sum(len(fk._compiled) for fk in kernels) == entries
