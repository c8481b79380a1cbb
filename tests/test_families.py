"""The per-family descriptors: every family has one, and what they say is what the core does."""

import pytest
import torch

import qlinear
from qlinear import families, testing
from qlinear.config import CONFIG_CLASSES, FAMILIES
from qlinear.families.schemes import scheme_config
from qlinear.kernel import FAMILY_ABCS, expected_act_dtype
from qlinear.layers import expected_params, make_layer, quantize_layer_params


def test_one_descriptor_per_family_in_order():
    table = families.all_families()
    assert tuple(table) == FAMILIES == tuple(FAMILY_ABCS)
    for name, f in table.items():
        assert f.config_class is CONFIG_CLASSES[name]
        assert families.family_of(name) is f
        assert scheme_config(f.scheme, 256, 512).family == name  # its representative scheme is its own
        for s in f.schemes:
            assert scheme_config(s, 256, 512).family == name, s
    with pytest.raises(ValueError, match="config.family: unknown family 'int3'"):
        families.family_of("int3")


@pytest.mark.parametrize("fam", FAMILIES)
def test_dtype_accessors_read_the_field_the_config_names(fam):
    for c in testing.default_configs(fam):
        f = families.family_of(c)
        assert families.act_dtype(c) == getattr(c, f.act_field) == expected_act_dtype(c)
        assert families.out_dtype(c) == families.act_dtype(c)  # no out dtype given: the activation's
    c = testing.default_configs(fam)[0]
    assert families.out_dtype(c, torch.empty(1, dtype=torch.float16)) == torch.float16
    if families.family_of(c).takes_fp8_input:
        assert families.out_dtype(c, torch.empty(1, dtype=torch.float8_e4m3fn)) == torch.bfloat16


def test_out_dtype_prefers_the_config():
    c = qlinear.MPLinearLayerConfig((256, 128), (256, 128), qlinear.scalar_types.uint4b8, torch.bfloat16, 128,
                                    False, False, out_type=torch.float32)
    assert families.out_dtype(c, torch.empty(1, dtype=torch.bfloat16)) == torch.float32
    i8 = qlinear.Int8ScaledMMLinearLayerConfig(False, True, True, (128, 256), torch.float16, torch.bfloat16)
    assert families.act_dtype(i8) == torch.float16 and families.out_dtype(i8) == torch.bfloat16


@pytest.mark.parametrize("fam", FAMILIES)
def test_quantize_gives_exactly_the_param_spec(fam):
    """What ``quantize`` makes is what ``param_spec`` requires (no extra, no missing name) and
    ``make_layer`` accepts it, with the family's parameter metadata."""
    c = testing.default_configs(fam)[0]
    n, k = c.shape_nk
    params = quantize_layer_params(c, torch.randn(n, k) * 0.05, calib_x=torch.randn(4, k))
    spec = expected_params(c)
    assert set(params) <= set(spec)
    assert {name for name, (_, _, required) in spec.items() if required} <= set(params)
    layer = make_layer(c, params)
    for name, meta in families.family_of(c).param_meta.items():
        if name in params:
            assert all(getattr(getattr(layer, name), a) == v for a, v in meta.items())


@pytest.mark.parametrize("scheme,want", [
    ("w4a16-asym", ("uint4", 128, True, False)), ("w8a16-g64-asym", ("uint8", 64, True, False)),
    ("w4a16-ch-actorder", None), ("w4a16-gidx", ("uint4b8", 128, False, True)), ("awq-g64", ("uint4", 64, True, False)),
    ("mp", ("uint4b8", 128, False, False)), ("W4A16_G32", ("uint4b8", 32, False, False)),
])
def test_mp_grammar(scheme, want):
    if want is None:  # act-order needs groups: the config says so, naming the field
        with pytest.raises(ValueError, match="has_g_idx"):
            scheme_config(scheme, 256, 512)
        return
    c = scheme_config(scheme, 256, 512)
    assert (c.weight_type.name, c.group_size, c.zero_points, c.has_g_idx) == want


@pytest.mark.parametrize("scheme", ["w4a16-g64-g128", "w4a16-ch-g64", "w4a16-asym-asym", "int8-dynamic-asym-sym",
                                    "int8-static-tensor-channel", "int8-sometimes", "fp8-maybe", "w3a16"])
def test_grammar_rejects_contradictions(scheme):
    with pytest.raises(ValueError, match="scheme: "):
        scheme_config(scheme, 256, 512)


def test_scheme_dtype_as_word_or_dtype():
    assert scheme_config("nvfp4", 256, 512, "fp16") == scheme_config("nvfp4", 256, 512, torch.float16)
    with pytest.raises(ValueError, match="dtype: 'int4'"):
        scheme_config("nvfp4", 256, 512, "int4")
