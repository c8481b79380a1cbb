"""The FP8 W8A8 families: per-tensor / per-channel weight scales (``fp8``), and 128x128 weight
blocks with 1x128 activation groups (``fp8_block``). Both take an activation that arrives already
quantized to FP8 (then ``input_scale`` is its scale)."""

from __future__ import annotations

import itertools

import torch

from .. import quant_key as qk
from ..config import FP8ScaledMMLinearLayerConfig
from ..formats.codes import FP8_MAX, to_e4m3
from ..formats.fp8 import dequantize_fp8, expand_blocks, quantize_fp8_activation, quantize_fp8_weight
from . import Family, Sharding, need_calib
from .int8 import dequantize_weight as _dequantize_scaled_weight, scaled_mm_rule

_F32, _FP8 = (torch.float32,), (torch.float8_e4m3fn,)
_FP8_SCHEMES = {  # name -> (weight key, activation key)
    "fp8-tensor": (qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym),
    "fp8-static": (qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym),  # another name for fp8-tensor
    "fp8-dynamic": (qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym),
    "fp8-dynamic-tensor": (qk.kFp8StaticTensorSym, qk.kFp8DynamicTensorSym),
    "fp8-channel-static": (qk.kFp8StaticChannelSym, qk.kFp8StaticTensorSym),
}


def _parse(names):
    def parse_scheme(s: str, n: int, k: int, dt: torch.dtype) -> FP8ScaledMMLinearLayerConfig | None:
        return FP8ScaledMMLinearLayerConfig(*names[s], (n, k), dt) if s in names else None

    return parse_scheme


def _prequantized(p, x, dtype):
    """An FP8 activation from upstream: its scale is the layer's ``input_scale``."""
    return x.to(dtype) * p("input_scale").to(dtype)


# ---- per-tensor / per-channel --------------------------------------------------------------------
def quantize(c: FP8ScaledMMLinearLayerConfig, w: torch.Tensor, calib_x=None, g_idx=None) -> dict:
    q, s = quantize_fp8_weight(w, "channel" if c.weight_quant_key.scale.group_shape.is_per_channel() else "tensor")
    p = {"weight": q.t(), "weight_scale": s}
    if c.activation_quant_key.scale.static:
        x = need_calib(calib_x, "a static FP8 activation scale")
        p["input_scale"] = (x.float().abs().amax() / FP8_MAX).clamp(min=1e-12).reshape(1)
    return p


def param_spec(c: FP8ScaledMMLinearLayerConfig):
    n, k = c.shape_nk
    ch = c.weight_quant_key.scale.group_shape.is_per_channel()
    return {
        "weight": ((k, n), _FP8, True),  # a [K, N] view of the [N, K] weight
        "weight_scale": ((n, 1) if ch else None, _F32, True),
        "input_scale": (None, _F32, c.activation_quant_key.scale.static),
        "input_scale_ub": (None, _F32, False),
    }


def dequantize_activation(c: FP8ScaledMMLinearLayerConfig, p, x, dtype):
    if x.dtype == torch.float8_e4m3fn:
        return _prequantized(p, x, dtype)
    a = c.activation_quant_key.scale
    if a.group_shape.is_per_token():
        q, s = quantize_fp8_activation(x, "token", scale_ub=p("input_scale_ub"))
    elif a.static:
        q, s = quantize_fp8_activation(x, "tensor", scale=p("input_scale"))
    else:
        q, s = quantize_fp8_activation(x, "tensor")
    return q.to(dtype) * s.to(dtype)


def default_configs() -> list[FP8ScaledMMLinearLayerConfig]:
    acts = (qk.kFp8StaticTensorSym, qk.kFp8DynamicTensorSym, qk.kFp8DynamicTokenSym)
    out = [FP8ScaledMMLinearLayerConfig(w, a, nk, torch.bfloat16) for w, a, nk in itertools.product(
        (qk.kFp8StaticTensorSym, qk.kFp8StaticChannelSym), acts, ((256, 512), (255, 513)))]
    out.append(FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512), torch.float16))
    return out


def quick_configs() -> list[FP8ScaledMMLinearLayerConfig]:
    bf, fp = torch.bfloat16, torch.float16
    return [FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512), bf),
            FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (255, 513), bf),
            FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8DynamicTensorSym, (256, 512), fp),
            FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 4096), bf)]


def _case_tag(c: FP8ScaledMMLinearLayerConfig) -> str:
    a = c.activation_quant_key.scale
    return f"-w{c.weight_quant_key.scale.group_shape}-a{'static' if a.static else 'dyn'}{a.group_shape}"


def _summary(c: FP8ScaledMMLinearLayerConfig) -> str:
    return f", weight {c.weight_quant_key.scale}, act {c.activation_quant_key.scale}"


def _reconcile(c, rc, name: str, vals: list, pieces: dict, out: dict):
    if name == "weight_scale":
        # vLLM's requantize_with_max_scale: one per-tensor scale, the largest; each part's codes are
        # rescaled to it (exact for the largest part, one E4M3 rounding for the others)
        smax = torch.stack(vals).max()
        rows, chunks = 0, []
        for v, ws in zip(vals, pieces["weight"]):
            seg = out["weight"][rows:rows + ws.shape[0]]
            chunks.append(to_e4m3(seg.float() * (v / smax)))
            rows += ws.shape[0]
        out["weight"], out[name] = torch.cat(chunks, 0), smax.reshape(1)
        return rc
    if name in ("input_scale", "input_scale_ub"):
        out[name] = torch.stack(vals).max().reshape(1)  # vLLM: one static activation scale, the largest
        return rc
    return None


FAMILY = Family(
    name="fp8", config_class=FP8ScaledMMLinearLayerConfig, act_field="input_dtype", out_field="out_dtype",
    tolerance=3e-2, scheme="fp8-dynamic", schemes=("fp8-tensor", "fp8-dynamic"),
    help={
        "fp8-tensor": "FP8 e4m3: per-tensor weight scale, static per-tensor activation scale (also: fp8-static)",
        "fp8-dynamic": "FP8 e4m3: per-channel weights, dynamic per-token activations (also: fp8-dynamic-tensor, "
                       "fp8-channel-static)",
    },
    parse_scheme=_parse(_FP8_SCHEMES), quantize=quantize, param_spec=param_spec,
    dequantize_weight=_dequantize_scaled_weight, dequantize_activation=dequantize_activation,
    default_configs=default_configs, quick_configs=quick_configs, case_tag=_case_tag, summary=_summary,
    takes_fp8_input=True,
    sharding=Sharding(rule=scaled_mm_rule(lambda c: c.weight_quant_key.scale.group_shape.is_per_channel()),
                      transposed_weight=True, reconcile=_reconcile),
)


# ---- block-scaled --------------------------------------------------------------------------------
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def quantize_block(c: FP8ScaledMMLinearLayerConfig, w: torch.Tensor, calib_x=None, g_idx=None) -> dict:
    q, s = quantize_fp8_weight(w, "block", c.weight_block)
    return {"weight": q, "weight_scale_inv": s}


def param_spec_block(c: FP8ScaledMMLinearLayerConfig):
    (n, k), (bn, bk) = c.shape_nk, c.weight_block
    return {"weight": ((n, k), _FP8, True), "weight_scale_inv": ((_cdiv(n, bn), _cdiv(k, bk)), _F32, True)}


def dequantize_weight_block(c: FP8ScaledMMLinearLayerConfig, p, dtype):
    s = p("weight_scale_inv")
    return dequantize_fp8(p("weight"), s if s is not None else p("weight_scale"), c.weight_block, dtype)


def dequantize_activation_block(c: FP8ScaledMMLinearLayerConfig, p, x, dtype):
    if x.dtype == torch.float8_e4m3fn:
        return _prequantized(p, x, dtype)
    col = c.activation_quant_key.scale.group_shape.col
    q, s = quantize_fp8_activation(x, "group", group=col)
    return q.to(dtype) * expand_blocks(s.to(dtype), (1, col), q.shape)


def _block_rule(c: FP8ScaledMMLinearLayerConfig, name: str, column: bool):
    bn, bk = c.weight_block
    if name == "weight":
        return (0, 1, False) if column else (1, 1, False)
    if name in ("weight_scale_inv", "weight_scale"):  # a ragged last block covers the tail
        return (0, bn, True) if column else (1, bk, True)
    return (None, 1, False)


def _block_boundary(c: FP8ScaledMMLinearLayerConfig, column: bool) -> tuple[int, str]:
    bn, bk = c.weight_block
    if column:
        return bn, f"a {bn}x{bk} weight scale block would be split along N"
    return bk, f"a {bn}x{bk} weight scale block (and a 1x{bk} activation group) would be split along K"


def _block_finish(c, out: dict) -> None:
    if "weight_scale" in out and "weight_scale_inv" not in out:
        out["weight_scale_inv"] = out.pop("weight_scale")  # the as-loaded name


def _block_configs(shapes):
    return [FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, nk, dt) for nk, dt in shapes]


BLOCK_FAMILY = Family(
    name="fp8_block", config_class=FP8ScaledMMLinearLayerConfig, act_field="input_dtype", out_field="out_dtype",
    tolerance=3e-2, scheme="fp8-block", schemes=("fp8-block",),
    help={"fp8-block": "FP8 e4m3: 128x128 weight blocks, dynamic 1x128 activation groups (DeepSeek style)"},
    parse_scheme=_parse({"fp8-block": (qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym)}), quantize=quantize_block,
    param_spec=param_spec_block, dequantize_weight=dequantize_weight_block,
    dequantize_activation=dequantize_activation_block,
    default_configs=lambda: _block_configs((((256, 512), torch.bfloat16), ((384, 1024), torch.bfloat16),
                                            ((256, 512), torch.float16), ((300, 520), torch.bfloat16))),
    quick_configs=lambda: _block_configs((((256, 512), torch.bfloat16), ((300, 520), torch.bfloat16))),
    case_tag=_case_tag, summary=_summary, takes_fp8_input=True,
    sharding=Sharding(rule=_block_rule, boundary=_block_boundary, finish=_block_finish),
)
