"""One descriptor per precision family: everything the core knows about a family, in one place.

A ``Family`` names the family's config class, which config fields hold the activation and output
dtypes, the parameters of a layer in the as-loaded layout (``param_spec``), how to make them from a
float weight (``quantize``), the numeric reference (``dequantize_weight`` / ``dequantize_activation``),
the scheme names it answers to (``parse_scheme``), and the layers the conformance kit runs
(``default_configs``; ``quick_configs`` for ``qlinear verify``).

``layers``, ``formats.reference``, ``testing``, ``nn``, the CLI, ``sharding`` (through the family's
``Sharding``: how its parameters split over tensor-parallel ranks) and the providers read these
descriptors instead of branching on ``config.family``; adding a family means adding one module
here (and its config class and kernel ABC).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ..config import FAMILIES, LayerConfig

# name -> (shape, or None for "one value ([1] or 0-dim)", allowed dtypes, required)
ParamSpec = dict[str, tuple["tuple[int, ...] | None", tuple[torch.dtype, ...], bool]]
Getter = Callable[[str], "torch.Tensor | None"]


# (dim, unit, cdiv_end) of one parameter under a split, in the checkpoint layout: the dimension the
# split cuts (None: every rank holds the whole value), how many features one stored index covers,
# and whether the last index may cover a ragged tail of the whole dimension
SplitRule = "tuple[int | None, int, bool]"


@dataclass(frozen=True)
class Sharding:
    """How a family's parameters split over tensor-parallel ranks (``qlinear.sharding`` reads it;
    ``column``: split N, the output features; else split K, the input features)."""

    rule: Callable[[Any, str, bool], SplitRule]  # (config, parameter name, column) -> SplitRule
    # (config, column) -> (unit, why): every slice boundary lands on a multiple of unit features
    boundary: Callable[[Any, bool], tuple[int, str]] = lambda c, column: (1, "")
    main: str = "weight"  # the parameter whose first checkpoint dimension is N (a fused part's width)
    transposed_weight: bool = False  # the loaded ``weight`` is [K, N], a view of the checkpoint's [N, K]
    derived: tuple[str, ...] = ()  # parameters recomputed on each rank by ``finish``, never sliced
    finish: Callable[[Any, dict], None] = lambda c, out: None  # fill the rank's derived parameters
    # fused parts whose one-value parameter differs: (config, rank config, name, values, per-part
    # pieces, joined params) -> the rank config (the joined params updated), or None: refused
    reconcile: Callable[[Any, Any, str, list, dict, dict], Any] = lambda c, rc, name, vals, pieces, out: None
    refuse: Callable[[Any], "str | None"] = lambda c: None  # why this config cannot be split at all
    full_nk: Callable[[Any], "tuple[int, int] | None"] = lambda c: c.shape_nk  # the whole layer's (N, K)
    shape_field: str = "weight_shape"  # the config field that holds a rank's slice shape
    partition: Callable[[Any, int, int], Any] = lambda c, n, k: dataclasses.replace(c, weight_shape=(n, k))
    # the config of a whole (unsharded) layer of shape (n, k) otherwise like c, what fused parts join
    # into; None: ``partition`` (a config holding one shape, not a slice's and the whole layer's)
    whole: Callable[[Any, int, int], Any] | None = None

    def whole_config(self, c, n: int, k: int):
        return (self.whole or self.partition)(c, n, k)


@dataclass(frozen=True)
class Family:
    name: str
    config_class: type[LayerConfig]
    act_field: str  # the config field holding the activation dtype (vLLM named it three ways)
    out_field: str  # ... and the optional output dtype
    tolerance: float  # relative Frobenius error a kernel may have against the float64 reference
    scheme: str  # the representative scheme (what ``qlinear doctor`` gates every kernel on)
    schemes: tuple[str, ...]  # names listed in ``qlinear.nn.SCHEMES``
    help: Mapping[str, str]  # scheme -> one line, for ``qlinear explain -h``
    parse_scheme: Callable[[str, int, int, torch.dtype], "LayerConfig | None"]  # None: not this family's name
    quantize: Callable[..., dict]  # (config, w [N, K] float, calib_x=, g_idx=) -> as-loaded params
    param_spec: Callable[[Any], ParamSpec]
    dequantize_weight: Callable[[Any, Getter, torch.dtype], torch.Tensor]  # -> [N, K]
    dequantize_activation: Callable[[Any, Getter, torch.Tensor, torch.dtype], torch.Tensor]
    default_configs: Callable[[], list]  # the conformance kit's layers
    quick_configs: Callable[[], list]  # a smaller set (``qlinear verify`` without --full)
    case_tag: Callable[[Any], str] = lambda c: ""  # what tells this family's cases apart ("-uint4b8-g128")
    summary: Callable[[Any], str] = lambda c: ""  # the key facts in words (", uint4b8 group 128")
    param_meta: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # compressed-tensors attrs
    takes_fp8_input: bool = False  # an activation already quantized to FP8 may be passed in
    sharding: Sharding | None = None  # tensor-parallel splits (None: the family cannot be sharded)


def _table() -> dict[str, Family]:
    from . import fp8, int8, micro, mp, w4a8

    fams = [mp.FAMILY, int8.FAMILY, fp8.FAMILY, fp8.BLOCK_FAMILY, *micro.FAMILIES, w4a8.FAMILY]
    table = {f.name: f for f in fams}
    assert tuple(table) == FAMILIES, (tuple(table), FAMILIES)
    return table


_TABLE: dict[str, Family] = {}


def all_families() -> dict[str, Family]:
    """name -> Family, in ``FAMILIES`` order."""
    if not _TABLE:
        _TABLE.update(_table())
    return _TABLE


def family_of(c: "LayerConfig | str") -> Family:
    """The descriptor of a config (or of a family name)."""
    name = c if isinstance(c, str) else c.family
    try:
        return all_families()[name]
    except KeyError:
        raise ValueError(f"config.family: unknown family {name!r}; families: {FAMILIES}") from None


def act_dtype(c: LayerConfig) -> torch.dtype:
    """The activation dtype the layer takes (``act_type`` / ``input_dtype`` / ``act_dtype``)."""
    return getattr(c, family_of(c).act_field)


def out_dtype(c: LayerConfig, x: torch.Tensor | None = None) -> torch.dtype:
    """The output dtype: the config's, else the activation's (``x``'s when given; bfloat16 for an
    activation that arrived already quantized to FP8)."""
    dt = getattr(c, family_of(c).out_field, None)
    if dt is not None:
        return dt
    if x is None:
        return act_dtype(c)
    return torch.bfloat16 if x.dtype == torch.float8_e4m3fn else x.dtype


def getter(params) -> Getter:
    """``name -> tensor or None`` over a dict of parameters or a layer module."""
    if isinstance(params, Mapping):
        return params.get
    return lambda name: getattr(params, name, None)


def need_calib(calib_x: torch.Tensor | None, why: str) -> torch.Tensor:
    """Sample activations [M, K] for a static scale, or an error naming ``calib_x``."""
    if calib_x is None:
        raise ValueError(f"calib_x: {why} needs sample activations to calibrate its static scale")
    return calib_x.reshape(-1, calib_x.shape[-1])


__all__ = ["Family", "ParamSpec", "Sharding", "act_dtype", "all_families", "family_of", "getter", "need_calib", "out_dtype"]
