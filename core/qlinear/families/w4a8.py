"""The W4A8 family: symmetric int4 weights (E4M3 group scales, fp32 channel scales) x FP8 E4M3
activations quantized per token at run time. The weight numerics are ``qlinear.formats.w4a8``'s."""

from __future__ import annotations

import math
import re

import torch

from ..config import W4A8LinearLayerConfig
from ..formats.fp8 import quantize_fp8_activation
from ..formats.w4a8 import dequantize_w4a8, quantize_w4a8
from . import Family, Sharding

_RE = re.compile(r"^w4a8(?:-(?:g(?P<g>\d+)|(?P<ch>ch)))?$")


def parse_scheme(s: str, n: int, k: int, dt: torch.dtype) -> W4A8LinearLayerConfig | None:
    m = _RE.match(s)
    if not m:
        return None
    return W4A8LinearLayerConfig((n, k), -1 if m.group("ch") else int(m.group("g") or 128), dt)


def param_spec(c: W4A8LinearLayerConfig):
    n, k = c.weight_shape
    return {
        "weight_packed": ((n, k // 8), (torch.int32,), True),
        "weight_scale": ((n, k // c.effective_group_size),
                         (torch.float8_e4m3fn, torch.bfloat16, torch.float16, torch.float32), True),
        "weight_chan_scale": ((n, 1), (torch.float32,), True),
    }


def dequantize_weight(c: W4A8LinearLayerConfig, p, dtype):
    return dequantize_w4a8(p("weight_packed"), p("weight_scale"), p("weight_chan_scale"), c.group_size, dtype)


def dequantize_activation(c: W4A8LinearLayerConfig, p, x, dtype):
    q, s = quantize_fp8_activation(x, "token")
    return q.to(dtype) * s.to(dtype)


def _configs(rows):
    return [W4A8LinearLayerConfig(nk, g, dt) for nk, g, dt in rows]


def default_configs() -> list[W4A8LinearLayerConfig]:
    bf, fp = torch.bfloat16, torch.float16
    return _configs([((256, 512), 128, bf), ((256, 512), 128, fp), ((256, 512), -1, bf), ((256, 512), 256, bf),
                     ((256, 512), 64, bf), ((200, 384), 128, bf), ((512, 1024), 128, bf)])


def quick_configs() -> list[W4A8LinearLayerConfig]:
    return _configs([((256, 512), 128, torch.bfloat16), ((256, 512), -1, torch.float16),
                     ((256, 4096), 128, torch.bfloat16)])


# ---- tensor-parallel splits ---------------------------------------------------------------------
def _rule(c: W4A8LinearLayerConfig, name: str, column: bool):
    if column:  # every parameter is per output row
        return (0, 1, False)
    if name == "weight_packed":
        return (1, 8, False)
    if name == "weight_scale" and c.group_size != -1:
        return (1, c.group_size, False)
    return (None, 1, False)  # per-channel scales: the same on every row slice


def _boundary(c: W4A8LinearLayerConfig, column: bool) -> tuple[int, str]:
    if column:
        return 1, ""
    if c.group_size == -1:
        return 8, "int4 codes pack 8 per int32 word along K"
    return math.lcm(c.group_size, 8), f"group_size={c.group_size}: a slice must hold whole scale groups"


FAMILY = Family(
    name="w4a8", config_class=W4A8LinearLayerConfig, act_field="input_dtype", out_field="out_dtype", tolerance=3e-2,
    scheme="w4a8", schemes=("w4a8", "w4a8-ch"),
    help={"w4a8": "int4 weights (E4M3 group scales x fp32 channel scales), group 128, FP8 activations per token "
                  "(w4a8-gG: any G; w4a8-ch: per channel)"},
    parse_scheme=parse_scheme, quantize=lambda c, w, calib_x=None, g_idx=None: quantize_w4a8(w, c.group_size),
    param_spec=param_spec, dequantize_weight=dequantize_weight, dequantize_activation=dequantize_activation,
    default_configs=default_configs, quick_configs=quick_configs,
    case_tag=lambda c: f"-g{c.group_size}", summary=lambda c: f", int4 group {c.group_size}, FP8 per-token activations",
    param_meta={"weight_packed": dict(input_dim=1, output_dim=0, packed_dim=1),
                "weight_scale": dict(input_dim=1, output_dim=0), "weight_chan_scale": dict(output_dim=0)},
    sharding=Sharding(rule=_rule, boundary=_boundary, main="weight_packed"),
)
