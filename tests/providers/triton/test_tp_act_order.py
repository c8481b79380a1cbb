"""A row-parallel slice of an act-order W4A16 layer (``is_k_full`` False: the rank keeps the whole
scale table and its slice of g_idx, as vLLM does for Marlin) through the triton W4A16 kernel, on CPU
through Triton's interpreter, against the float64 reference of the slice."""

import pytest
import torch

from qlinear.formats import reference_linear
from qlinear.layers import make_layer, quantize_layer_params
from qlinear.nn import scheme_config
from qlinear.sharding import shard_params
from qlinear.testing import TOLERANCE
from qlinear_triton.mp import TritonW4A16LinearKernel

from .conftest import interpreter_only, runnable_here

pytestmark = interpreter_only


@pytest.mark.parametrize("scheme", ["w4a16-g128-actorder", "awq-g128", "w4a16-g128"])
@pytest.mark.parametrize("m", [1, 33])
def test_row_slice(scheme, m):
    torch.manual_seed(m)
    c = scheme_config(scheme, 128, 512)
    if scheme.startswith("awq"):  # act-order with zero points too
        c = type(c)(c.full_weight_shape, c.partition_weight_shape, c.weight_type, c.act_type, 128, True, True)
    p = quantize_layer_params(c, torch.randn(128, 512))
    x = torch.randn(m, 512, dtype=torch.bfloat16)
    kern = runnable_here(TritonW4A16LinearKernel)
    for r in range(2):
        rc, rp = shard_params(c, p, "row", r, 2)
        assert rc.is_k_full == (not c.has_g_idx)
        layer = make_layer(rc, dict(rp))
        k = kern.create(rc)
        k.process_weights_after_loading(layer)
        xr = x[:, r * 256:(r + 1) * 256].contiguous()
        ref = reference_linear(rc, rp, xr)
        out = k.apply(layer, xr)
        err = float((out.double() - ref).norm() / ref.norm())
        assert err < TOLERANCE["mp"], (scheme, r, err)
