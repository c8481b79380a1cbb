"""The W4A8 family on CPU: config and scheme validation, the weight format (E4M3 group scales, fp32
channel scales, the product rounded to E4M3), quantization, refusals that name the field (checkpoints: tests/models). The numeric reference itself is judged by the independent decoder in
test_formats_spec.py through test_emulation.py."""

import pytest
import torch

from qlinear.config import MPLinearLayerConfig, W4A8LinearLayerConfig
from qlinear.families.schemes import scheme_config
from qlinear.formats.int_pack import pack_along
from qlinear.formats.w4a8 import GROUP_SCALE_TARGET, dequantize_w4a8, group_scales_e4m3, quantize_w4a8, signed_codes
from qlinear.nn import QuantLinear
from qlinear.scalar_type import scalar_types


def test_scheme_names():
    assert scheme_config("w4a8", 256, 512) == W4A8LinearLayerConfig((256, 512), 128)
    assert scheme_config("w4a8-ch", 256, 512, "fp16") == W4A8LinearLayerConfig((256, 512), -1, torch.float16)
    assert scheme_config("w4a8-g256", 256, 512).group_size == 256
    assert scheme_config("W4A8", 256, 512).family == "w4a8"


@pytest.mark.parametrize("kw, field", [
    (dict(weight_shape=(256, 500)), "group_size: input size K=500 is not divisible"),
    (dict(weight_shape=(256, 500), group_size=-1), "weight_shape: K=500 must be a multiple of 8"),
    (dict(weight_shape=(256, 512), group_size=0), "group_size: must be -1"),
    (dict(weight_shape=(256, 512), group_size=True), "group_size: must be -1"),
    (dict(weight_shape=(256,)), "weight_shape: expected two positive ints"),
    (dict(weight_shape=(256, 512), input_dtype=torch.int8), "input_dtype:"),
])
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"W4A8LinearLayerConfig.{field}"):
        W4A8LinearLayerConfig(**kw)


def test_mp_config_with_fp8_activations_points_to_w4a8():
    with pytest.raises(ValueError, match="MPLinearLayerConfig.act_type: FP8 activations with int4 weights are the W4A8"):
        MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint4b8, torch.float8_e4m3fn, 128, False, False)


@pytest.mark.parametrize("group", [128, -1])
def test_quantize_puts_scales_where_the_format_wants_them(group):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(64, 512, generator=g) * torch.logspace(-3, 0, 64).view(64, 1)
    w[3] = 0  # an all-zero channel
    p = quantize_w4a8(w, group)
    s = p["weight_scale"]
    assert s.dtype == torch.float8_e4m3fn and s.shape == (64, 512 // (512 if group == -1 else group))
    assert p["weight_chan_scale"].dtype == torch.float32 and p["weight_chan_scale"].shape == (64, 1)
    assert float(s.float().max()) <= GROUP_SCALE_TARGET and bool((s.float()[torch.arange(64) != 3] > 0).all())
    q = signed_codes(p["weight_packed"])
    assert int(q.min()) >= -8 and int(q.max()) <= 7
    deq = dequantize_w4a8(p["weight_packed"], s, p["weight_chan_scale"], group)
    assert torch.equal(deq[3], torch.zeros(512))
    rel = ((deq - w).norm(dim=1) / w.norm(dim=1).clamp(min=1e-30))[torch.arange(64) != 3]
    # int4 with E4M3 products on Gaussian rows: ~10% with groups of 128, ~13-17% per channel
    assert float(rel.max()) < (0.15 if group == 128 else 0.2)


def test_the_product_is_rounded_to_e4m3():
    # q = 7, s_g = 1.125 -> 7.875 is not an E4M3 value (1.111 x 2^2 = 7.5 / 8.0): it rounds to 8
    packed = pack_along(torch.tensor([[7 + 8] * 8]), 4, 1)
    s = torch.tensor([[1.125]]).to(torch.float8_e4m3fn)
    w = dequantize_w4a8(packed, s, torch.tensor([[0.5]]), -1)
    assert w.tolist() == [[4.0] * 8]  # e4m3(7.875) = 8, times the channel scale 0.5


@pytest.mark.parametrize("bad, why", [
    (torch.tensor([[60.0]]), r"weight_scale: W4A8 group scales must lie in \[0, 56\]"),
    (torch.tensor([[-1.0]]), r"weight_scale: W4A8 group scales must lie in \[0, 56\]"),
    (torch.tensor([[float("nan")]]), "weight_scale: holds NaN or inf"),
    (torch.tensor([[1]], dtype=torch.int32), "weight_scale: expected float8_e4m3fn or a float dtype"),
])
def test_bad_group_scales_are_refused_by_name(bad, why):
    with pytest.raises(ValueError, match=why):
        group_scales_e4m3(bad)


def test_shape_errors_name_the_parameter():
    p = quantize_w4a8(torch.randn(16, 256), 128)
    with pytest.raises(ValueError, match=r"weight_scale.shape: expected \[16, 2\]"):
        dequantize_w4a8(p["weight_packed"], p["weight_scale"][:, :1], p["weight_chan_scale"], 128)
    with pytest.raises(ValueError, match=r"weight_chan_scale.shape: expected \[16, 1\]"):
        dequantize_w4a8(p["weight_packed"], p["weight_scale"], p["weight_chan_scale"][:8], 128)


def test_from_linear_and_quantlinear_run_on_cpu():
    lin = torch.nn.Linear(512, 256).bfloat16()
    q = QuantLinear.from_linear(lin, "w4a8")
    x = torch.randn(3, 7, 512, dtype=torch.bfloat16)
    y = q(x)
    assert y.shape == (3, 7, 256) and y.dtype == torch.bfloat16
    ref = lin(x).float()
    assert float((y.float() - ref).norm() / ref.norm()) < 0.1
    x[1, 2, 5] = float("nan")  # a non-finite row comes out NaN (dynamic per-token scale)
    out = q(x)
    assert torch.isnan(out[1, 2]).all() and torch.isfinite(out[0]).all()
