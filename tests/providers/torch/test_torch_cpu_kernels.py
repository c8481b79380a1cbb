"""Conformance of every CPU kernel of the torch provider, run for real on this CPU."""

import pytest
import torch

from qlinear import testing
from qlinear_torch.fp8 import TorchCpuFP8ScaledMMLinearKernel
from qlinear_torch.int8 import TorchCpuInt8ScaledMMLinearKernel
from qlinear_torch.mp import TorchCpuW4A16LinearKernel, TorchCpuW8A16LinearKernel

# FP8 on CPU is slow (emulated _scaled_mm in torch): M=33 adds little over M=7
FP8_MS = (1, 7)
CPU_KERNELS = [TorchCpuInt8ScaledMMLinearKernel, TorchCpuW4A16LinearKernel, TorchCpuW8A16LinearKernel,
               TorchCpuFP8ScaledMMLinearKernel]


def _cases():
    out = []
    for k in CPU_KERNELS:
        ms = FP8_MS if k is TorchCpuFP8ScaledMMLinearKernel else (1, 7, 33)
        for case in testing.cases_for(k, ms=ms):
            if k.can_implement(case.config)[0]:  # declined configs are covered in test_torch_gating
                out.append(pytest.param(k, case, id=f"{k.__name__}-{case}"))
    return out


@pytest.mark.parametrize("kernel,case", _cases())
def test_conformance(kernel, case):
    res = testing.run_case(kernel, case, device="cpu")
    assert res.ran


@pytest.mark.parametrize("kernel", CPU_KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs(kernel):
    testing.check_bad_inputs(kernel, device="cpu")


@pytest.mark.parametrize("kernel", CPU_KERNELS, ids=lambda k: k.__name__)
def test_kernel_covers_cases(kernel):
    """Each kernel ran a real number of the kit's cases (a kit run that skips all proves nothing)."""
    ran = [c for c in testing.cases_for(kernel, ms=(1,)) if kernel.can_implement(c.config)[0]]
    assert len(ran) >= {TorchCpuW8A16LinearKernel: 2}.get(kernel, 6)


def test_leading_dims_and_out_dtype():
    """x [B, S, K] -> [B, S, N]; an out_type other than the activation dtype is honoured."""
    from qlinear import MPLinearLayerConfig, scalar_types

    c = MPLinearLayerConfig((256, 128), (256, 128), scalar_types.uint4b8, torch.bfloat16, 64, False, False,
                            out_type=torch.float32)
    testing.check_leading_dims(TorchCpuW4A16LinearKernel, c, lead=(2, 3))


def test_int8_wrong_weight_layout_names_field():
    from qlinear import Int8ScaledMMLinearLayerConfig
    from qlinear.layers import make_layer, quantize_layer_params

    c = Int8ScaledMMLinearLayerConfig(False, True, True, (64, 128))
    params = quantize_layer_params(c, torch.randn(64, 128))
    params["weight"] = params["weight"].t()  # [N, K] instead of [K, N]
    k = TorchCpuInt8ScaledMMLinearKernel.create(c)
    with pytest.raises(ValueError, match="weight"):
        k.process_weights_after_loading(make_layer(c, params))


def test_w4a16_wrong_scale_shape_names_field():
    from qlinear import MPLinearLayerConfig, scalar_types
    from qlinear.layers import make_layer, quantize_layer_params

    c = MPLinearLayerConfig((256, 128), (256, 128), scalar_types.uint4b8, torch.bfloat16, 64, False, False)
    params = quantize_layer_params(c, torch.randn(128, 256))
    params["weight_scale"] = params["weight_scale"][:, :2]
    k = TorchCpuW4A16LinearKernel.create(c)
    with pytest.raises(ValueError, match="weight_scale"):
        k.process_weights_after_loading(make_layer(c, params))
