"""The microscaled families: NVFP4 (E2M1, E4M3 scales per 16, fp32 global scales), MXFP4 (E2M1,
E8M0 scales per 32) and MXFP8 (E4M3, E8M0 scales per 32). Activations are quantized the same way."""

from __future__ import annotations

import torch

from ..config import MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig
from ..formats.micro import (
    dequantize_mxfp4, dequantize_mxfp8, dequantize_nvfp4, nvfp4_global_scale, qdq, quantize_mxfp4, quantize_mxfp8,
    quantize_nvfp4,
)
from . import Family, Sharding, need_calib

_F32, _FP8, _U8 = (torch.float32,), (torch.float8_e4m3fn,), (torch.uint8,)


def _configs(cls, shapes):
    return lambda: [cls(nk, dt) for nk, dt in shapes]


_DEFAULT = (((256, 512), torch.bfloat16), ((128, 1024), torch.bfloat16), ((256, 512), torch.float16))
_QUICK = (((256, 512), torch.bfloat16), ((128, 1024), torch.float16))


def _sharding(name: str, block: int, per_byte: int, finish=lambda c, out: None) -> Sharding:
    """Scales per ``block`` elements along K, ``per_byte`` codes per stored weight byte: a row split
    lands on a scale block; the scales are split in their linear (as-loaded) layout."""

    def rule(c, pname: str, column: bool):
        if pname == "weight":
            return (0, 1, False) if column else (1, per_byte, False)
        if pname == "weight_scale":
            return (0, 1, False) if column else (1, block, False)
        return (None, 1, False)  # global scales: whole on every rank

    return Sharding(rule=rule, finish=finish,
                    boundary=lambda c, column: (1, "") if column else (block, f"one {name} scale covers {block} elements along K"))


def _family(name: str, cls, tolerance: float, help: str, **parts) -> Family:
    return Family(
        name=name, config_class=cls, act_field="act_dtype", out_field="out_dtype", tolerance=tolerance, scheme=name,
        schemes=(name,), help={name: help},
        parse_scheme=lambda s, n, k, dt: cls((n, k), dt) if s == name else None,
        default_configs=_configs(cls, _DEFAULT), quick_configs=_configs(cls, _QUICK), **parts)


# ---- NVFP4 -----------------------------------------------------------------------------------------
def quantize_nv(c, w: torch.Tensor, calib_x=None, g_idx=None) -> dict:
    x = need_calib(calib_x, "NVFP4's input global scale")
    q, s, gs = quantize_nvfp4(w)
    igs = nvfp4_global_scale(x.float().abs().amax())
    return {"weight": q, "weight_scale": s, "weight_global_scale": gs, "input_global_scale": igs,
            "input_global_scale_inv": 1.0 / igs, "alpha": 1.0 / (igs * gs)}


def param_spec_nv(c):
    n, k = c.shape_nk
    return {"weight": ((n, k // 2), _U8, True), "weight_scale": ((n, k // 16), _FP8, True),
            "weight_global_scale": (None, _F32, True), "input_global_scale": (None, _F32, True),
            "input_global_scale_inv": (None, _F32, False), "alpha": (None, _F32, False)}


def _finish_nv(c, out: dict) -> None:
    if "weight_global_scale" in out and "input_global_scale" in out:  # the derived factors, from the whole scales
        igs, gs = out["input_global_scale"].float(), out["weight_global_scale"].float()
        out["input_global_scale_inv"] = 1.0 / igs
        out["alpha"] = 1.0 / (igs * gs)


NVFP4 = _family(
    "nvfp4", NvFp4LinearLayerConfig, 5e-2, "NVFP4: E2M1 weights, E4M3 scales per 16, fp32 global scales",
    quantize=quantize_nv, param_spec=param_spec_nv, sharding=_sharding("nvfp4", 16, 2, _finish_nv),
    dequantize_weight=lambda c, p, dtype: dequantize_nvfp4(p("weight"), p("weight_scale"), p("weight_global_scale"), dtype),
    dequantize_activation=lambda c, p, x, dtype: qdq(x, "nvfp4", p("input_global_scale")).to(dtype))


# ---- MXFP4 / MXFP8 -----------------------------------------------------------------------------------
def _mx(name: str, cls, tolerance: float, help: str, quantize_fn, dequantize_fn, packed: bool) -> Family:
    def param_spec(c):
        n, k = c.shape_nk
        weight = ((n, k // 2), _U8) if packed else ((n, k), _FP8)
        return {"weight": (*weight, True), "weight_scale": ((n, k // 32), _U8, True)}

    def quantize(c, w, calib_x=None, g_idx=None):
        q, s = quantize_fn(w)
        return {"weight": q, "weight_scale": s}

    return _family(name, cls, tolerance, help, quantize=quantize, param_spec=param_spec,
                   sharding=_sharding(name, 32, 2 if packed else 1),
                   dequantize_weight=lambda c, p, dtype: dequantize_fn(p("weight"), p("weight_scale"), dtype),
                   dequantize_activation=lambda c, p, x, dtype: qdq(x, name).to(dtype))


MXFP4 = _mx("mxfp4", MxFp4LinearLayerConfig, 5e-2, "MXFP4: E2M1 weights, E8M0 scales per 32",
            quantize_mxfp4, dequantize_mxfp4, packed=True)
MXFP8 = _mx("mxfp8", Mxfp8LinearLayerConfig, 3e-2, "MXFP8: E4M3 weights, E8M0 scales per 32",
            quantize_mxfp8, dequantize_mxfp8, packed=False)

FAMILIES = (NVFP4, MXFP4, MXFP8)
