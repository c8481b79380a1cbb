"""Make a layer's parameters in the as-loaded layout (vLLM's), from a float weight.

``quantize_layer_params(config, w)`` returns a dict of tensors named as ARCHITECTURE.md's table
says; ``make_layer(config, params)`` wraps them as frozen Parameters on an ``nn.Module`` with the
compressed-tensors metadata (``input_dim`` / ``output_dim`` / ``packed_dim``) kernels rely on.
Static activation scales (INT8 static, FP8 static, NVFP4's input global scale) are calibrated
from ``calib_x``, which those schemes therefore require.
"""

from __future__ import annotations

import torch

from . import formats as F
from .config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    LayerConfig,
    MPLinearLayerConfig,
)

_META = {  # compressed-tensors parameter metadata for MP layers
    "weight_packed": dict(input_dim=1, output_dim=0, packed_dim=1),
    "weight_scale": dict(input_dim=1, output_dim=0),
    "weight_zero_point": dict(input_dim=1, output_dim=0, packed_dim=0),
    "weight_g_idx": dict(input_dim=0),
}


def _need_calib(calib_x, why: str, k: int | None = None) -> torch.Tensor:
    if calib_x is None:
        raise ValueError(f"calib_x: {why} needs sample activations to calibrate its static scale")
    if not isinstance(calib_x, torch.Tensor):
        raise TypeError(f"calib_x: expected a torch.Tensor, got {type(calib_x).__name__}")
    if not calib_x.dtype.is_floating_point:
        raise ValueError(f"calib_x.dtype: expected a floating-point tensor, got {calib_x.dtype}")
    if calib_x.dim() < 1 or calib_x.numel() == 0:
        raise ValueError(f"calib_x.shape: expected [..., K] with at least one row, got {tuple(calib_x.shape)}")
    if k is not None and calib_x.shape[-1] != k:
        raise ValueError(f"calib_x.shape: last dimension must be K={k}, got {tuple(calib_x.shape)}")
    bad = int((~torch.isfinite(calib_x)).sum())
    if bad:  # one NaN would make the static scale NaN, and with it every output of the layer
        raise ValueError(f"calib_x: {bad} non-finite value(s) (NaN/inf); the static scale would be non-finite")
    return calib_x.reshape(-1, calib_x.shape[-1])


def quantize_layer_params(c: LayerConfig, w: torch.Tensor, *, calib_x: torch.Tensor | None = None,
                          g_idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Float weight [N, K] -> the layer's quantized parameters for config ``c``."""
    nk = c.shape_nk
    if w.dim() != 2 or (nk is not None and tuple(w.shape) != tuple(nk)):
        raise ValueError(f"w.shape: expected {nk} (N, K), got {tuple(w.shape)}")
    if not w.dtype.is_floating_point:
        raise ValueError(f"w.dtype: expected a floating-point weight, got {w.dtype}")
    bad = int((~torch.isfinite(w)).sum())
    if bad:  # a NaN would otherwise surface as a cryptic code-range error, or as NaN scales
        raise ValueError(f"w: the weight has {bad} non-finite value(s) (NaN/inf); it cannot be quantized")
    k = w.shape[1]
    if calib_x is not None:  # checked even where the scheme does not use it: a wrong one is a caller bug
        _need_calib(calib_x, "this scheme", k)
    fam = c.family
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        if c.has_g_idx and g_idx is None:
            g_idx = F.act_order_g_idx(c.K, c.group_size).to(w.device)
        return F.quantize_wna16(w, c.weight_type, c.group_size, c.zero_points, g_idx if c.has_g_idx else None,
                                scale_dtype=c.act_type)
    if fam == "int8":
        assert isinstance(c, Int8ScaledMMLinearLayerConfig)
        q, s = F.quantize_int8_weight(w, c.is_channelwise)
        p = {"weight": q.t(), "weight_scale": s}
        if c.is_static_input_scheme:
            xs, zp = F.int8_static_scale(_need_calib(calib_x, "a static INT8 scheme", k), c.input_symmetric)
            p["input_scale"] = xs
            if zp is not None:
                p["input_zero_point"] = zp
        if not c.input_symmetric:
            p["azp_adj"] = F.azp_adj(q.t())
        return p
    if fam == "fp8":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        gran = "channel" if c.weight_quant_key.scale.group_shape.is_per_channel() else "tensor"
        q, s = F.quantize_fp8_weight(w, gran)
        p = {"weight": q.t(), "weight_scale": s}
        if c.activation_quant_key.scale.static:
            x = _need_calib(calib_x, "a static FP8 activation scale", k)
            p["input_scale"] = (x.float().abs().amax() / F.FP8_MAX).clamp(min=1e-12).reshape(1)
        return p
    if fam == "fp8_block":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        q, s = F.quantize_fp8_weight(w, "block", c.weight_block)
        return {"weight": q, "weight_scale_inv": s}
    if fam == "nvfp4":
        x = _need_calib(calib_x, "NVFP4's input global scale", k)
        q, s, gs = F.quantize_nvfp4(w)
        igs = F.nvfp4_global_scale(x.float().abs().amax())
        return {"weight": q, "weight_scale": s, "weight_global_scale": gs, "input_global_scale": igs,
                "input_global_scale_inv": 1.0 / igs, "alpha": 1.0 / (igs * gs)}
    if fam == "mxfp4":
        q, s = F.quantize_mxfp4(w)
        return {"weight": q, "weight_scale": s}
    if fam == "mxfp8":
        q, s = F.quantize_mxfp8(w)
        return {"weight": q, "weight_scale": s}
    raise ValueError(f"config.family: unknown family {fam!r}")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def expected_params(c: LayerConfig) -> dict[str, tuple[tuple[int, ...] | None, tuple[torch.dtype, ...], bool]]:
    """name -> (shape or None for "any scalar-like", allowed dtypes, required) in the as-loaded layout."""
    f32 = (torch.float32,)
    fp8 = (torch.float8_e4m3fn,)
    one = None  # [1] or a 0-dim scalar
    n, k = c.shape_nk if c.shape_nk else (None, None)
    fam = c.family
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        # an act-order row slice (is_k_full False) keeps the whole layer's scale table (see is_k_full)
        pf, g = c.pack_factor, (k if c.is_k_full else c.full_weight_shape[0]) // c.effective_group_size
        return {
            "weight_packed": ((n, k // pf), (torch.int32,), True),
            "weight_scale": ((n, g), (c.act_type, torch.float16, torch.bfloat16, torch.float32), True),
            "weight_zero_point": ((n // pf, g), (torch.int32,), c.zero_points),
            "weight_g_idx": ((k,), (torch.int32, torch.int64), c.has_g_idx),
        }
    if fam in ("int8", "fp8"):
        ch = c.is_channelwise if isinstance(c, Int8ScaledMMLinearLayerConfig) else c.weight_quant_key.scale.group_shape.is_per_channel()
        static = c.is_static_input_scheme if isinstance(c, Int8ScaledMMLinearLayerConfig) else c.activation_quant_key.scale.static
        wdt = (torch.int8,) if fam == "int8" else fp8
        spec = {
            "weight": ((k, n) if n else None, wdt, True),
            "weight_scale": ((n, 1) if ch and n else one, f32, True),
            "input_scale": (one, f32, static),
        }
        if fam == "int8":
            asym = not c.input_symmetric
            spec["input_zero_point"] = (one, (torch.int32,), static and asym)
            spec["azp_adj"] = ((n,) if n else None, (torch.int32,), asym)
        else:
            spec["input_scale_ub"] = (one, f32, False)
        return spec
    if fam == "fp8_block":
        bn, bk = c.weight_block
        return {"weight": ((n, k), fp8, True), "weight_scale_inv": ((_cdiv(n, bn), _cdiv(k, bk)), f32, True)}
    if fam == "nvfp4":
        return {"weight": ((n, k // 2), (torch.uint8,), True), "weight_scale": ((n, k // 16), fp8, True),
                "weight_global_scale": (one, f32, True), "input_global_scale": (one, f32, True),
                "input_global_scale_inv": (one, f32, False), "alpha": (one, f32, False)}
    if fam in ("mxfp4", "mxfp8"):
        wshape, wdt = ((n, k // 2), (torch.uint8,)) if fam == "mxfp4" else ((n, k), fp8)
        return {"weight": (wshape, wdt, True), "weight_scale": ((n, k // 32), (torch.uint8,), True)}
    raise ValueError(f"config.family: unknown family {fam!r}")


def validate_params(c: LayerConfig, params) -> None:
    """Raise ValueError naming the parameter whose shape/dtype doesn't fit config ``c``
    (a wrong scale shape would otherwise give NaN or garbage in some libraries, silently)."""
    get = params.get if isinstance(params, dict) else (lambda name: getattr(params, name, None))
    for name, (shape, dtypes, required) in expected_params(c).items():
        t = get(name)
        if t is None:
            if required:
                raise ValueError(f"{name}: missing (required by {c.describe()})")
            continue
        if t.dtype not in dtypes:
            raise ValueError(f"{name}.dtype: expected one of {[str(d) for d in dtypes]}, got {t.dtype}")
        if shape is None:
            if t.numel() != 1 and name not in ("weight", "azp_adj"):
                raise ValueError(f"{name}.shape: expected a single value ([1] or a scalar), got {tuple(t.shape)}")
        elif tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name}.shape: expected {tuple(shape)}, got {tuple(t.shape)}")


def make_layer(c: LayerConfig, params: dict[str, torch.Tensor], module: torch.nn.Module | None = None) -> torch.nn.Module:
    """Register ``params`` as frozen Parameters (with MP metadata) on ``module`` (a new one by default),
    after checking every parameter's shape and dtype against ``c`` (``validate_params``)."""
    validate_params(c, params)
    devices = {t.device for t in params.values()}
    if len(devices) > 1:
        raise ValueError(f"params: all parameters must be on one device, got {sorted(map(str, devices))}")
    layer = module if module is not None else torch.nn.Module()
    for name, t in params.items():
        p = torch.nn.Parameter(t, requires_grad=False)
        if c.family == "mp":
            for k, v in _META.get(name, {}).items():
                setattr(p, k, v)
            if "packed_dim" in _META.get(name, {}):
                p.packed_factor = 32 // c.weight_type.size_bits  # type: ignore[attr-defined]
        layer.register_parameter(name, p)
    layer.qlinear_config = c
    return layer
