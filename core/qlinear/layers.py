"""Make a layer's parameters in the as-loaded layout (vLLM's), from a float weight.

``quantize_layer_params(config, w)`` returns a dict of tensors named as the family ABC's
docstring (``qlinear.kernel``) says; ``make_layer(config, params)`` wraps them as frozen Parameters
on an ``nn.Module`` with the compressed-tensors metadata (``input_dim`` / ``output_dim`` /
``packed_dim``) kernels rely on. What each family's parameters are lives in its descriptor
(``qlinear.families``).
Static activation scales (INT8 static, FP8 static, NVFP4's input global scale) are calibrated
from ``calib_x``, which those schemes therefore require.
"""

from __future__ import annotations

import torch

from .config import LayerConfig
from .families import ParamSpec, family_of, getter


def check_calib(calib_x, k: int) -> None:
    """Sample activations for a static scale must be a float [..., K] tensor with a row and no NaN/inf:
    one NaN would make the static scale, and every output, NaN."""
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
        check_calib(calib_x, k)
    return family_of(c).quantize(c, w, calib_x=calib_x, g_idx=g_idx)


def expected_params(c: LayerConfig) -> ParamSpec:
    """name -> (shape or None for "any scalar-like", allowed dtypes, required) in the as-loaded layout."""
    return family_of(c).param_spec(c)


def validate_params(c: LayerConfig, params) -> None:
    """Raise ValueError naming the parameter whose shape/dtype doesn't fit config ``c``
    (a wrong scale shape would otherwise give NaN or garbage in some libraries, silently)."""
    get = getter(params)
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
    meta = family_of(c).param_meta
    for name, t in params.items():
        p = torch.nn.Parameter(t, requires_grad=False)
        for k, v in meta.get(name, {}).items():
            setattr(p, k, v)
        if "packed_dim" in meta.get(name, {}):
            p.packed_factor = c.pack_factor  # type: ignore[attr-defined]
        layer.register_parameter(name, p)
    layer.qlinear_config = c
    return layer
