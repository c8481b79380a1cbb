"""Layer configs: one frozen dataclass per precision family, validated on construction.

A wrong field raises ``ValueError`` naming the field. Field names follow vLLM so engine code ports
over unchanged. MP uses (in, out) shapes like vLLM; the other families carry ``weight_shape`` as
(N, K) = (out, in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .quant_key import (
    FP8,
    GroupShape,
    QuantKey,
)
from .scalar_type import ScalarType, scalar_types

FAMILIES = ("mp", "int8", "fp8", "fp8_block", "nvfp4", "mxfp4", "mxfp8", "w4a8")
ACT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _fail(cls: str, fld: str, msg: str) -> None:
    raise ValueError(f"{cls}.{fld}: {msg}")


def _check_shape(cls: str, fld: str, shape) -> tuple[int, int]:
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2 and all(isinstance(d, int) and d > 0 for d in shape)):
        _fail(cls, fld, f"expected two positive ints, got {shape!r}")
    return tuple(shape)  # type: ignore[return-value]


def _check_dtype(cls: str, fld: str, dt, allowed=ACT_DTYPES, optional=False) -> None:
    if dt is None and optional:
        return
    if dt not in allowed:
        _fail(cls, fld, f"{dt} is not one of {[str(a) for a in allowed]}")


@dataclass(frozen=True)
class LayerConfig:
    family: ClassVar[str] = ""

    @property
    def shape_nk(self) -> tuple[int, int] | None:
        """(N, K) = (out, in) of this rank's weight, where the config knows it."""
        return getattr(self, "weight_shape", None)

    def describe(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={_fmt(v)}' for k, v in vars(self).items())})"


def _fmt(v) -> str:
    if isinstance(v, torch.dtype):
        return str(v).removeprefix("torch.")
    return str(v)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MPLinearLayerConfig(LayerConfig):
    """Mixed precision: quantized weights (int4/int8/fp8/fp4 codes with group scales), 16-bit activations.

    Weight types: ``uint4b8``/``uint8b128`` (GPTQ, symmetric, no zero points), ``uint4``/``uint8``
    with zero points (AWQ / asymmetric GPTQ). ``group_size`` -1 means one scale per output channel.
    """

    full_weight_shape: tuple[int, int]  # (in, out)
    partition_weight_shape: tuple[int, int]  # (in, out) of this rank
    weight_type: ScalarType
    act_type: torch.dtype
    group_size: int
    zero_points: bool
    has_g_idx: bool
    out_type: torch.dtype | None = None
    family: ClassVar[str] = "mp"

    SUPPORTED_TYPES: ClassVar[tuple[ScalarType, ...]] = (
        scalar_types.uint4b8,
        scalar_types.uint8b128,
        scalar_types.uint4,
        scalar_types.uint8,
    )

    def __post_init__(self) -> None:
        c = type(self).__name__
        _check_shape(c, "full_weight_shape", self.full_weight_shape)
        k, n = _check_shape(c, "partition_weight_shape", self.partition_weight_shape)
        if not isinstance(self.weight_type, ScalarType) or self.weight_type not in self.SUPPORTED_TYPES:
            _fail(c, "weight_type", f"{self.weight_type!r} is not one of {[t.name for t in self.SUPPORTED_TYPES]}")
        if self.act_type == torch.float8_e4m3fn:
            _fail(c, "act_type", "FP8 activations with int4 weights are the W4A8 family: describe the layer with "
                  "W4A8LinearLayerConfig (scheme w4a8)")
        _check_dtype(c, "act_type", self.act_type)
        _check_dtype(c, "out_type", self.out_type, optional=True)
        if self.zero_points and self.weight_type.has_bias():
            _fail(c, "zero_points", f"{self.weight_type.name} already carries a bias; zero points need uint4/uint8")
        if not self.zero_points and not self.weight_type.has_bias():
            _fail(c, "zero_points", f"{self.weight_type.name} has no bias, so it needs zero points (or use {self.weight_type.name}b*)")
        g = self.group_size
        if not isinstance(g, int) or (g != -1 and g <= 0):
            _fail(c, "group_size", f"must be -1 (per channel) or a positive int, got {g!r}")
        if g != -1 and k % g:
            _fail(c, "group_size", f"input size K={k} is not divisible by group_size={g}")
        if k % self.pack_factor:
            _fail(c, "partition_weight_shape", f"K={k} must be a multiple of {self.pack_factor} ({self.weight_type.size_bits}-bit codes pack {self.pack_factor} per int32 along K)")
        if self.zero_points and n % self.pack_factor:
            _fail(c, "partition_weight_shape", f"N={n} must be a multiple of {self.pack_factor} (zero points pack along N)")
        if self.has_g_idx and g == -1:
            _fail(c, "has_g_idx", "act-order (g_idx) needs a group size, not -1")

    @property
    def K(self) -> int:  # noqa: N802
        return self.partition_weight_shape[0]

    @property
    def N(self) -> int:  # noqa: N802
        return self.partition_weight_shape[1]

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.N, self.K)

    @property
    def bits(self) -> int:
        return self.weight_type.size_bits

    @property
    def pack_factor(self) -> int:
        return 32 // self.weight_type.size_bits

    @property
    def effective_group_size(self) -> int:
        return self.K if self.group_size == -1 else self.group_size

    @property
    def is_k_full(self) -> bool:
        """False when this rank holds a row-parallel slice of an act-order layer (vLLM's
        ``marlin_is_k_full``): its input channels then reference groups anywhere in the full K, so
        the rank keeps the whole scale table. A row slice without act-order is "K full": its
        groups are its own."""
        return not self.has_g_idx or self.full_weight_shape[0] == self.partition_weight_shape[0]


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Int8ScaledMMLinearLayerConfig(LayerConfig):
    """W8A8 INT8: int8 weights with per-tensor or per-channel scales, int8 activations."""

    is_static_input_scheme: bool
    is_channelwise: bool
    input_symmetric: bool
    weight_shape: tuple[int, int] | None = None  # (N, K)
    input_dtype: torch.dtype = torch.bfloat16
    out_dtype: torch.dtype | None = None
    is_fused_module: bool = False
    family: ClassVar[str] = "int8"

    def __post_init__(self) -> None:
        c = type(self).__name__
        for f in ("is_static_input_scheme", "is_channelwise", "input_symmetric", "is_fused_module"):
            if not isinstance(getattr(self, f), bool):
                _fail(c, f, f"must be a bool, got {getattr(self, f)!r}")
        if self.weight_shape is not None:
            _check_shape(c, "weight_shape", self.weight_shape)
        _check_dtype(c, "input_dtype", self.input_dtype)
        _check_dtype(c, "out_dtype", self.out_dtype, optional=True)


# --------------------------------------------------------------------------------------------
_FP8_WEIGHT_GROUPS = (GroupShape.PER_TENSOR, GroupShape.PER_CHANNEL, GroupShape(128, 128))
_FP8_ACT_GROUPS = (GroupShape.PER_TENSOR, GroupShape.PER_TOKEN, GroupShape(1, 128))


@dataclass(frozen=True)
class FP8ScaledMMLinearLayerConfig(LayerConfig):
    """W8A8 FP8. With activation groups (1, 128) and weight blocks (128, 128) it is block-scaled FP8."""

    weight_quant_key: QuantKey
    activation_quant_key: QuantKey
    weight_shape: tuple[int, int]  # (N, K)
    input_dtype: torch.dtype = torch.bfloat16
    out_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        c = type(self).__name__
        wk, ak = self.weight_quant_key, self.activation_quant_key
        if not isinstance(wk, QuantKey) or wk.dtype != FP8:
            _fail(c, "weight_quant_key", f"must be a float8_e4m3fn QuantKey, got {wk}")
        if not isinstance(ak, QuantKey) or ak.dtype != FP8:
            _fail(c, "activation_quant_key", f"must be a float8_e4m3fn QuantKey, got {ak}")
        if wk.scale.group_shape not in _FP8_WEIGHT_GROUPS:
            _fail(c, "weight_quant_key", f"weight scale grouping {wk.scale.group_shape} is not per-tensor, per-channel or 128x128")
        if not wk.scale.static:
            _fail(c, "weight_quant_key", "weight scales must be static")
        if ak.scale.group_shape not in _FP8_ACT_GROUPS:
            _fail(c, "activation_quant_key", f"activation grouping {ak.scale.group_shape} is not per-tensor, per-token or 1x128")
        if ak.scale.group_shape == GroupShape.PER_TOKEN and ak.scale.static:
            _fail(c, "activation_quant_key", "per-token activation scales must be dynamic")
        blockw = wk.scale.group_shape.is_block()
        blocka = ak.scale.group_shape.is_per_group()
        if blockw != blocka:
            _fail(c, "activation_quant_key", "block-scaled FP8 pairs 1x128 activation groups with 128x128 weight blocks; got "
                  f"weight {wk.scale.group_shape}, activation {ak.scale.group_shape}")
        if blocka and ak.scale.static:
            _fail(c, "activation_quant_key", "1x128 activation group scales must be dynamic")
        _check_shape(c, "weight_shape", self.weight_shape)
        _check_dtype(c, "input_dtype", self.input_dtype)
        _check_dtype(c, "out_dtype", self.out_dtype, optional=True)

    @property
    def family(self) -> str:  # type: ignore[override]
        return "fp8_block" if self.is_block else "fp8"

    @property
    def is_block(self) -> bool:
        return self.weight_quant_key.scale.group_shape.is_block()

    @property
    def weight_block(self) -> tuple[int, int]:
        g = self.weight_quant_key.scale.group_shape
        return (g.row, g.col)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _MicroscaledConfig(LayerConfig):
    weight_shape: tuple[int, int]  # (N, K)
    act_dtype: torch.dtype = torch.bfloat16
    out_dtype: torch.dtype | None = None
    block_size: ClassVar[int] = 0

    def __post_init__(self) -> None:
        c = type(self).__name__
        n, k = _check_shape(c, "weight_shape", self.weight_shape)
        if k % self.block_size:
            _fail(c, "weight_shape", f"K={k} is not a multiple of the {self.block_size}-element scale block")
        _check_dtype(c, "act_dtype", self.act_dtype)
        _check_dtype(c, "out_dtype", self.out_dtype, optional=True)


@dataclass(frozen=True)
class NvFp4LinearLayerConfig(_MicroscaledConfig):
    """NVFP4: E2M1 weights (two per byte), E4M3 scales per 16 elements, fp32 global scales."""

    family: ClassVar[str] = "nvfp4"
    block_size: ClassVar[int] = 16


@dataclass(frozen=True)
class MxFp4LinearLayerConfig(_MicroscaledConfig):
    """MXFP4 (OCP): E2M1 weights (two per byte), E8M0 scales per 32 elements."""

    family: ClassVar[str] = "mxfp4"
    block_size: ClassVar[int] = 32


@dataclass(frozen=True)
class Mxfp8LinearLayerConfig(_MicroscaledConfig):
    """MXFP8 (OCP): E4M3 weights, E8M0 scales per 32 elements."""

    family: ClassVar[str] = "mxfp8"
    block_size: ClassVar[int] = 32


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class W4A8LinearLayerConfig(LayerConfig):
    """W4A8: symmetric int4 weights with FP8 E4M3 group scales and an fp32 scale per output channel,
    FP8 E4M3 activations quantized per token at run time; 16-bit activations in and out.

    The weight is ``w[n, k] = e4m3(q[n, k] * s_g[n, k // G]) * s_ch[n]`` with q in [-8, 7]: the product
    is rounded to E4M3 because it is an operand of the FP8 tensor-core MMA (``qlinear.formats.w4a8``).
    ``group_size`` -1 means one group scale per output channel (G = K).
    """

    weight_shape: tuple[int, int]  # (N, K)
    group_size: int = 128
    input_dtype: torch.dtype = torch.bfloat16
    out_dtype: torch.dtype | None = None
    family: ClassVar[str] = "w4a8"
    pack_factor: ClassVar[int] = 8  # int4 codes per int32 word along K

    def __post_init__(self) -> None:
        c = type(self).__name__
        n, k = _check_shape(c, "weight_shape", self.weight_shape)
        g = self.group_size
        if not isinstance(g, int) or isinstance(g, bool) or (g != -1 and g <= 0):
            _fail(c, "group_size", f"must be -1 (per channel) or a positive int, got {g!r}")
        if g != -1 and k % g:
            _fail(c, "group_size", f"input size K={k} is not divisible by group_size={g}")
        if k % self.pack_factor:
            _fail(c, "weight_shape", f"K={k} must be a multiple of {self.pack_factor} (int4 codes pack 8 per int32 along K)")
        _check_dtype(c, "input_dtype", self.input_dtype)
        _check_dtype(c, "out_dtype", self.out_dtype, optional=True)

    @property
    def effective_group_size(self) -> int:
        return self.weight_shape[1] if self.group_size == -1 else self.group_size


CONFIG_CLASSES = {
    "mp": MPLinearLayerConfig,
    "int8": Int8ScaledMMLinearLayerConfig,
    "fp8": FP8ScaledMMLinearLayerConfig,
    "fp8_block": FP8ScaledMMLinearLayerConfig,
    "nvfp4": NvFp4LinearLayerConfig,
    "mxfp4": MxFp4LinearLayerConfig,
    "mxfp8": Mxfp8LinearLayerConfig,
    "w4a8": W4A8LinearLayerConfig,
}
