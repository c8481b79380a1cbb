"""The cpu provider's INT8 W8A8 kernel: its AVX512-VNNI small-M path and its AMX path compute the
same exact int32 dot products, so they must give bit-identical outputs; NaN/inf rows come out NaN."""

import pytest
import torch

pytest.importorskip("qlinear_cpu")

from qlinear import Int8ScaledMMLinearLayerConfig  # noqa: E402
from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear_cpu import caps  # noqa: E402
from qlinear_cpu.int8 import CpuAmxInt8ScaledMMLinearKernel  # noqa: E402

pytestmark = pytest.mark.skipif(not caps.gate()[0], reason=f"{caps.gate()[1]}")


def _layer(static, sym, n=200, k=328, seed=5):
    c = Int8ScaledMMLinearLayerConfig(static, True, sym, (n, k), torch.bfloat16)
    g = torch.Generator().manual_seed(seed)
    params = quantize_layer_params(c, torch.randn(n, k, generator=g) * 0.05, calib_x=torch.randn(8, k, generator=g))
    layer = make_layer(c, params)
    kern = CpuAmxInt8ScaledMMLinearKernel.create(c)
    kern.process_weights_after_loading(layer)
    return kern, layer, g


@pytest.mark.parametrize("static,sym", [(False, True), (False, False), (True, True), (True, False)])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 17])
def test_vnni_and_amx_paths_identical(static, sym, m):
    kern, layer, g = _layer(static, sym)
    x = torch.randn(m, 328, generator=g).bfloat16() * 3
    bias = torch.randn(200, generator=g)
    vec = kern.run(layer, x, bias, 64)  # every row on the VNNI path
    amx = kern.run(layer, x, bias, 0)   # every row on AMX tiles
    assert torch.isfinite(amx).all()
    assert torch.equal(vec, amx)
    # and the kernel's own choice equals both
    assert torch.equal(kern.apply_weights(layer, x, bias), amx)


def test_paths_identical_with_large_column_sums():
    """Large compensation terms (128 * colsum(W) > 2**24: K = 4096, all-positive columns)."""
    kern, _, g = _layer(False, True, n=64, k=4096)
    c = kern.config
    params = quantize_layer_params(c, torch.rand(64, 4096, generator=g) + 0.5, calib_x=torch.randn(8, 4096, generator=g))
    layer = make_layer(c, params)
    kern = CpuAmxInt8ScaledMMLinearKernel.create(c)
    kern.process_weights_after_loading(layer)
    assert int(kern.comp.abs().max()) > 2**24
    x = torch.randn(2, 4096, generator=g).bfloat16()
    assert torch.equal(kern.run(layer, x, None, 64), kern.run(layer, x, None, 0))


@pytest.mark.parametrize("vec_max_m", [0, 64])
def test_dynamic_non_finite_row_comes_out_nan(vec_max_m):
    kern, layer, g = _layer(False, False)
    x = torch.randn(3, 328, generator=g).bfloat16()
    x[1, 7] = float("inf")
    out = kern.run(layer, x, None, vec_max_m)
    assert torch.isnan(out[1]).all()
    assert torch.isfinite(out[0]).all() and torch.isfinite(out[2]).all()
