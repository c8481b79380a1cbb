"""Configs validate on construction and name the wrong field."""

import pytest
import torch

from qlinear import quant_key as qk
from qlinear.config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    MPLinearLayerConfig,
    MxFp4LinearLayerConfig,
    Mxfp8LinearLayerConfig,
    NvFp4LinearLayerConfig,
)
from qlinear.scalar_type import scalar_types as st


def mp(**kw):
    args = dict(full_weight_shape=(512, 256), partition_weight_shape=(512, 256), weight_type=st.uint4b8,
                act_type=torch.bfloat16, group_size=128, zero_points=False, has_g_idx=False)
    args.update(kw)
    return MPLinearLayerConfig(**args)


@pytest.mark.parametrize("kw,field", [
    (dict(group_size=100), "group_size"),
    (dict(group_size=0), "group_size"),
    (dict(act_type=torch.int8), "act_type"),
    (dict(weight_type=st.int8), "weight_type"),
    (dict(zero_points=True), "zero_points"),  # uint4b8 has a bias already
    (dict(weight_type=st.uint4), "zero_points"),  # uint4 needs zero points
    (dict(partition_weight_shape=(500, 256), group_size=-1), "partition_weight_shape"),  # K % 8
    (dict(weight_type=st.uint4, zero_points=True, partition_weight_shape=(512, 252)), "partition_weight_shape"),
    (dict(has_g_idx=True, group_size=-1), "has_g_idx"),
    (dict(partition_weight_shape=(0, 256)), "partition_weight_shape"),
])
def test_mp_config_names_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"MPLinearLayerConfig\.{field}"):
        mp(**kw)


def test_mp_config_properties():
    c = mp(full_weight_shape=(1024, 256), has_g_idx=True)
    assert (c.K, c.N, c.bits, c.pack_factor, c.family) == (512, 256, 4, 8, "mp")
    assert not c.is_k_full and mp().is_k_full


def test_fp8_configs():
    c = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
    assert c.family == "fp8" and not c.is_block
    b = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))
    assert b.family == "fp8_block" and b.weight_block == (128, 128)
    with pytest.raises(ValueError, match="activation_quant_key"):  # block weight with per-token act
        FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8DynamicTokenSym, (256, 512))
    with pytest.raises(ValueError, match="weight_quant_key"):
        FP8ScaledMMLinearLayerConfig(qk.kInt8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
    with pytest.raises(ValueError, match="weight_shape"):
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256,))
    with pytest.raises(ValueError, match="input_dtype"):
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512), torch.int32)


def test_int8_config():
    with pytest.raises(ValueError, match="is_channelwise"):
        Int8ScaledMMLinearLayerConfig(False, 1, True)
    assert Int8ScaledMMLinearLayerConfig(False, True, True).family == "int8"


@pytest.mark.parametrize("cls,bad_k", [(NvFp4LinearLayerConfig, 24), (MxFp4LinearLayerConfig, 48), (Mxfp8LinearLayerConfig, 16)])
def test_microscaled_configs_check_block(cls, bad_k):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.weight_shape"):
        cls((128, bad_k))
    with pytest.raises(ValueError, match="act_dtype"):
        cls((128, 256), torch.int8)
    assert cls((128, 256)).shape_nk == (128, 256)


def test_scalar_types():
    assert (st.uint4b8.min, st.uint4b8.max, st.uint4b8.size_bits) == (-8, 7, 4)
    assert st.float8_e4m3fn.max == 448.0 and st.float4_e2m1f.max == 6.0 and st.float8_e5m2.max == 57344.0
    assert st.float8_e8m0fnu.max == 2.0 ** 127
    assert st.by_name("uint4b8") is st.uint4b8
    with pytest.raises(ValueError, match="unknown scalar type"):
        st.by_name("uint3")
