"""The mixed-precision family (wNa16: GPTQ / AWQ int4 and int8 weights, 16-bit activations)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import torch

from ..config import MPLinearLayerConfig
from ..formats.int_pack import act_order_g_idx, dequantize_wna16, quantize_wna16
from ..scalar_type import scalar_types
from . import Family, Sharding

# w4a16 / w8a16 / awq, then modifiers, each at most once: -gG (group size G, default 128) or -ch
# (per channel), -asym / -zp (unsigned codes with zero points; awq implies it), -actorder / -gidx.
_RE = re.compile(r"^(?:w(?P<bits>[48])a16|(?P<awq>awq))(?P<mods>(?:-(?:g\d+|ch|asym|zp|gidx|actorder))*)$")
_ALIASES = {"w4a16-awq": "awq-g128"}


def parse_scheme(s: str, n: int, k: int, dt: torch.dtype) -> MPLinearLayerConfig | None:
    m = _RE.match(_ALIASES.get(s, s))
    if not m:
        return None
    mods = [w for w in m.group("mods").split("-") if w]
    groups = [w for w in mods if w[0] == "g" and w[1:].isdigit()]
    if len(set(mods)) != len(mods) or len(groups) + ("ch" in mods) > 1:
        raise ValueError(f"scheme: {s!r} repeats a modifier or gives two groupings")
    bits = 4 if m.group("awq") else int(m.group("bits"))
    zp = bool(m.group("awq")) or "asym" in mods or "zp" in mods
    g = -1 if "ch" in mods else int(groups[0][1:]) if groups else 128
    wt = {(4, False): scalar_types.uint4b8, (8, False): scalar_types.uint8b128,
          (4, True): scalar_types.uint4, (8, True): scalar_types.uint8}[(bits, zp)]
    return MPLinearLayerConfig((k, n), (k, n), wt, dt, g, zp, "gidx" in mods or "actorder" in mods)


def quantize(c: MPLinearLayerConfig, w: torch.Tensor, calib_x=None, g_idx=None) -> dict:
    if c.has_g_idx and g_idx is None:
        g_idx = act_order_g_idx(c.K, c.group_size).to(w.device)
    return quantize_wna16(w, c.weight_type, c.group_size, c.zero_points, g_idx if c.has_g_idx else None,
                          scale_dtype=c.act_type)


def param_spec(c: MPLinearLayerConfig):
    n, k = c.shape_nk
    # an act-order row slice (is_k_full False) keeps the whole layer's scale table (see is_k_full)
    pf, g = c.pack_factor, (k if c.is_k_full else c.full_weight_shape[0]) // c.effective_group_size
    return {
        "weight_packed": ((n, k // pf), (torch.int32,), True),
        "weight_scale": ((n, g), (c.act_type, torch.float16, torch.bfloat16, torch.float32), True),
        "weight_zero_point": ((n // pf, g), (torch.int32,), c.zero_points),
        "weight_g_idx": ((k,), (torch.int32, torch.int64), c.has_g_idx),
    }


def dequantize_weight(c: MPLinearLayerConfig, p, dtype):
    return dequantize_wna16(c.weight_type, p("weight_packed"), p("weight_scale"), p("weight_zero_point"),
                            p("weight_g_idx"), c.group_size, dtype)


def default_configs() -> list[MPLinearLayerConfig]:
    out = [MPLinearLayerConfig((512, 256), (512, 256), wt, dt, g, zp, False) for (wt, zp), g, dt in itertools.product(
        [(scalar_types.uint4b8, False), (scalar_types.uint8b128, False), (scalar_types.uint4, True), (scalar_types.uint8, True)],
        (-1, 32, 64, 128), (torch.bfloat16, torch.float16))]
    out.append(MPLinearLayerConfig((1024, 128), (1024, 128), scalar_types.uint4b8, torch.bfloat16, 128, False, False))
    out.append(MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint4b8, torch.float16, 128, False, True))
    out.append(MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint4, torch.bfloat16, 64, True, True))
    out.append(MPLinearLayerConfig((1024, 256), (512, 256), scalar_types.uint4b8, torch.bfloat16, 128, False, True))  # row-parallel slice
    return out


def quick_configs() -> list[MPLinearLayerConfig]:
    bf, fp = torch.bfloat16, torch.float16
    u4, u4z, u8 = scalar_types.uint4b8, scalar_types.uint4, scalar_types.uint8b128
    return [MPLinearLayerConfig((512, 256), (512, 256), u4, bf, 128, False, False),
            MPLinearLayerConfig((512, 256), (512, 256), u4z, bf, 64, True, False),
            MPLinearLayerConfig((512, 256), (512, 256), u8, fp, -1, False, False),
            MPLinearLayerConfig((512, 256), (512, 256), u4, fp, 128, False, True),
            MPLinearLayerConfig((4096, 256), (4096, 256), u4, bf, 128, False, False)]  # K of real models


# ---- tensor-parallel splits ---------------------------------------------------------------------
def _boundary(c: MPLinearLayerConfig, column: bool) -> tuple[int, str]:
    pf, g = c.pack_factor, c.group_size
    if not column:
        if g != -1 and not c.has_g_idx:
            return math.lcm(g, pf), f"group_size={g}: a slice must hold whole scale groups (and whole int32 words)"
        return pf, f"{c.bits}-bit codes pack {pf} per int32 word along K"
    if c.zero_points:
        return pf, f"zero points pack {pf} per int32 word along N"
    return 1, ""


def _rule(c: MPLinearLayerConfig, name: str, column: bool):
    pf, g = c.pack_factor, c.group_size
    keep_groups = g == -1 or c.has_g_idx  # per-channel or act-order: the whole scale table on every rank
    return {
        "weight_packed": (0, 1, False) if column else (1, pf, False),
        "weight_scale": (0, 1, False) if column else ((None, 1, False) if keep_groups else (1, g, False)),
        "weight_zero_point": (0, pf, False) if column else ((None, 1, False) if keep_groups else (1, g, False)),
        "weight_g_idx": (None, 1, False) if column else (0, 1, False),
    }.get(name, (None, 1, False))


def _refuse(c: MPLinearLayerConfig) -> str | None:
    if c.partition_weight_shape != c.full_weight_shape:
        return (f"partition_weight_shape: {c.partition_weight_shape} is already a slice of {c.full_weight_shape}; "
                "shard the full layer's config")
    return None


SHARDING = Sharding(
    rule=_rule, boundary=_boundary, main="weight_packed", refuse=_refuse,
    full_nk=lambda c: tuple(reversed(c.full_weight_shape)), shape_field="partition_weight_shape",
    partition=lambda c, n, k: dataclasses.replace(c, partition_weight_shape=(k, n)),
    whole=lambda c, n, k: dataclasses.replace(c, full_weight_shape=(k, n), partition_weight_shape=(k, n)))


FAMILY = Family(
    name="mp", config_class=MPLinearLayerConfig, act_field="act_type", out_field="out_type", tolerance=1e-2,
    scheme="w4a16-g128",
    schemes=("w4a16", "w4a16-g32", "w4a16-g64", "w4a16-g128", "w4a16-ch", "w4a16-g128-actorder", "w4a16-asym",
             "w8a16", "w8a16-g128", "w8a16-ch", "awq", "awq-g64", "awq-g128"),
    help={
        "w4a16-g128": "int4 weights (GPTQ uint4b8, symmetric), group 128, 16-bit activations (w4a16-gG: any G; -ch: "
                      "per channel; -actorder: g_idx; -asym: uint4 with zero points)",
        "w8a16": "int8 weights (GPTQ uint8b128), group 128, 16-bit activations (w8a16-ch: per channel)",
        "awq-g128": "int4 weights with zero points (AWQ uint4), group 128",
    },
    parse_scheme=parse_scheme, quantize=quantize, param_spec=param_spec, dequantize_weight=dequantize_weight,
    dequantize_activation=lambda c, p, x, dtype: x.to(dtype),  # 16-bit activations are used as they are
    default_configs=default_configs, quick_configs=quick_configs,
    case_tag=lambda c: f"-{c.weight_type.name}-g{c.group_size}" + ("-gidx" if c.has_g_idx else "")
    + ("" if c.is_k_full else "-kpart"),
    summary=lambda c: f", {c.weight_type.name} group {c.group_size}" + (", zero points" if c.zero_points else "")
    + (", g_idx" if c.has_g_idx else ""),
    param_meta={  # compressed-tensors parameter metadata that engines' loaders and kernels read
        "weight_packed": dict(input_dim=1, output_dim=0, packed_dim=1),
        "weight_scale": dict(input_dim=1, output_dim=0),
        "weight_zero_point": dict(input_dim=1, output_dim=0, packed_dim=0),
        "weight_g_idx": dict(input_dim=0),
    },
    sharding=SHARDING,
)
