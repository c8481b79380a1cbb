"""The INT8 W8A8 family: int8 weights, int8 activations (dynamic or static, symmetric or not)."""

from __future__ import annotations

import dataclasses
import itertools

import torch

from ..config import Int8ScaledMMLinearLayerConfig
from ..formats.int8 import azp_adj, int8_static_scale, quantize_int8_activation, quantize_int8_weight
from . import Family, Sharding, need_calib

_F32 = (torch.float32,)


def parse_scheme(s: str, n: int, k: int, dt: torch.dtype) -> Int8ScaledMMLinearLayerConfig | None:
    """``int8-dynamic`` / ``int8-static``, then at most one of -sym / -asym (activations; default sym)
    and one of -channel / -tensor (weight scales; default channel)."""
    words = s.split("-")
    if words[0] != "int8":
        return None
    mods = words[2:]
    if (len(words) < 2 or words[1] not in ("dynamic", "static") or not set(mods) <= {"sym", "asym", "tensor", "channel"}
            or len(set(mods)) != len(mods) or {"sym", "asym"} <= set(mods) or {"tensor", "channel"} <= set(mods)):
        raise ValueError(f"scheme: {s!r} is not int8-dynamic|static[-sym|-asym][-channel|-tensor]")
    return Int8ScaledMMLinearLayerConfig(words[1] == "static", "tensor" not in mods, "asym" not in mods, (n, k), dt)


def quantize(c: Int8ScaledMMLinearLayerConfig, w: torch.Tensor, calib_x=None, g_idx=None) -> dict:
    q, s = quantize_int8_weight(w, c.is_channelwise)
    p = {"weight": q.t(), "weight_scale": s}
    if c.is_static_input_scheme:
        xs, zp = int8_static_scale(need_calib(calib_x, "a static INT8 scheme"), c.input_symmetric)
        p["input_scale"] = xs
        if zp is not None:
            p["input_zero_point"] = zp
    if not c.input_symmetric:
        p["azp_adj"] = azp_adj(q.t())
    return p


def param_spec(c: Int8ScaledMMLinearLayerConfig):
    n, k = c.shape_nk if c.shape_nk else (None, None)
    static, asym = c.is_static_input_scheme, not c.input_symmetric
    return {
        "weight": ((k, n) if n else None, (torch.int8,), True),  # a [K, N] view of the [N, K] weight
        "weight_scale": ((n, 1) if c.is_channelwise and n else None, _F32, True),
        "input_scale": (None, _F32, static),
        "input_zero_point": (None, (torch.int32,), static and asym),
        "azp_adj": ((n,) if n else None, (torch.int32,), asym),
    }


def dequantize_weight(c, p, dtype):
    """Shared with FP8 per-tensor / per-channel: ``weight`` [K, N] times a scalar or [N, 1] scale."""
    return p("weight").t().to(dtype) * p("weight_scale").to(dtype).reshape(-1, 1)


def dequantize_activation(c: Int8ScaledMMLinearLayerConfig, p, x, dtype):
    static = c.is_static_input_scheme
    q, s, zp = quantize_int8_activation(x, c.input_symmetric, p("input_scale") if static else None,
                                        p("input_zero_point") if static else None)
    return (q.to(dtype) - (zp.to(dtype) if zp is not None else 0)) * s.to(dtype)


def default_configs() -> list[Int8ScaledMMLinearLayerConfig]:
    out = [Int8ScaledMMLinearLayerConfig(st, ch, sym, nk, torch.bfloat16)
           for (st, ch, sym), nk in itertools.product(itertools.product((False, True), (False, True), (True, False)),
                                                      ((256, 512), (255, 513)))]
    out.append(Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512), torch.float16))
    return out


def quick_configs() -> list[Int8ScaledMMLinearLayerConfig]:
    bf, fp = torch.bfloat16, torch.float16
    return [Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512), bf),
            Int8ScaledMMLinearLayerConfig(False, True, False, (255, 513), bf),
            Int8ScaledMMLinearLayerConfig(True, False, True, (256, 512), fp),
            Int8ScaledMMLinearLayerConfig(True, True, False, (256, 512), bf),
            Int8ScaledMMLinearLayerConfig(False, True, True, (256, 4096), bf)]


# ---- tensor-parallel splits ---------------------------------------------------------------------
def scaled_mm_rule(per_channel: bool):
    """The W8A8 split rule (INT8 and FP8 per-tensor / per-channel): the [N, K] weight follows the
    split, a per-channel scale [N, 1] follows N, a per-tensor scale and activation scales are whole."""

    def rule(c, name: str, column: bool):
        if name == "weight":
            return (0, 1, False) if column else (1, 1, False)
        if name == "weight_scale" and column and per_channel(c):
            return (0, 1, False)
        return (None, 1, False)

    return rule


def _finish(c: Int8ScaledMMLinearLayerConfig, out: dict) -> None:
    if not c.input_symmetric:
        out["azp_adj"] = azp_adj(out["weight"])  # from the rank's own weight slice


def _reconcile(c, rc, name: str, vals: list, pieces: dict, out: dict):
    if name != "weight_scale":
        return None
    # vLLM's convert_to_channelwise: each part's per-tensor scale repeated over its rows
    out[name] = torch.cat([v.reshape(1, 1).expand(ws.shape[0], 1) for v, ws in zip(vals, pieces["weight"])], 0)
    return dataclasses.replace(rc, is_channelwise=True)


SHARDING = Sharding(rule=scaled_mm_rule(lambda c: c.is_channelwise), transposed_weight=True, derived=("azp_adj",),
                    finish=_finish, reconcile=_reconcile)


FAMILY = Family(
    name="int8", config_class=Int8ScaledMMLinearLayerConfig, act_field="input_dtype", out_field="out_dtype",
    tolerance=2e-2, scheme="int8-dynamic",
    schemes=("int8-dynamic", "int8-dynamic-asym", "int8-static", "int8-static-asym"),
    help={
        "int8-dynamic": "W8A8 int8: per-channel weights, dynamic per-token symmetric activations (-asym: asymmetric)",
        "int8-static": "W8A8 int8: per-channel weights, static per-tensor symmetric activations",
        "int8-static-asym": "W8A8 int8: static per-tensor asymmetric activations (zero point, azp_adj)",
    },
    parse_scheme=parse_scheme, quantize=quantize, param_spec=param_spec, dequantize_weight=dequantize_weight,
    dequantize_activation=dequantize_activation, default_configs=default_configs, quick_configs=quick_configs,
    case_tag=lambda c: f"-{'static' if c.is_static_input_scheme else 'dyn'}-{'ch' if c.is_channelwise else 'tensor'}"
    f"-{'sym' if c.input_symmetric else 'asym'}",
    summary=lambda c: f", {'static' if c.is_static_input_scheme else 'dynamic'} {'sym' if c.input_symmetric else 'asym'} "
    f"act, per-{'channel' if c.is_channelwise else 'tensor'} weight",
    sharding=SHARDING,
)
