"""qlinear: describe a quantized linear layer, get the fastest kernel installed here, run it.

``import qlinear`` imports torch and the small core only; providers (and their heavy libraries)
load on first use of the registry. Names resolve lazily so the import stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "scalar_type": ["ScalarType", "scalar_types", "NanRepr"],
    "quant_key": ["GroupShape", "ScaleDesc", "QuantKey"],
    "config": [
        "LayerConfig", "MPLinearLayerConfig", "Int8ScaledMMLinearLayerConfig", "FP8ScaledMMLinearLayerConfig",
        "NvFp4LinearLayerConfig", "MxFp4LinearLayerConfig", "Mxfp8LinearLayerConfig", "W4A8LinearLayerConfig",
        "FAMILIES",
    ],
    "kernel": [
        "LinearKernel", "MPLinearKernel", "Int8ScaledMMLinearKernel", "FP8ScaledMMLinearKernel",
        "Fp8BlockScaledMMLinearKernel", "NvFp4LinearKernel", "MxFp4LinearKernel", "Mxfp8LinearKernel",
        "W4A8LinearKernel",
    ],
    "platform": ["Platform", "current_platform", "simulate_platform", "make_platform"],
    "settings": ["Settings", "get_settings", "override_settings", "reload_settings"],
    "registry": ["hookimpl", "get_registry", "reset_registry", "register_linear_kernel"],
    "selection": [
        "select", "Selection", "NoKernelError", "choose_mp_linear_kernel", "choose_scaled_mm_linear_kernel",
        "init_fp8_linear_kernel", "init_int8_linear_kernel", "init_nvfp4_linear_kernel",
        "init_mxfp4_linear_kernel", "init_mxfp8_linear_kernel",
    ],
    "nn": ["QuantLinear", "SCHEMES"],
    "layers": ["make_layer", "quantize_layer_params"],
    "models": ["quantize_model", "fuse_projections", "load_quantized", "save_quantized", "CheckpointError"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        if name in ("formats", "testing", "cli", "models"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'qlinear' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs
    from .config import *  # noqa: F401,F403
    from .kernel import *  # noqa: F401,F403
    from .layers import make_layer, quantize_layer_params  # noqa: F401
    from .models import CheckpointError, fuse_projections, load_quantized, quantize_model, save_quantized  # noqa: F401
    from .nn import SCHEMES, QuantLinear  # noqa: F401
    from .platform import *  # noqa: F401,F403
    from .quant_key import *  # noqa: F401,F403
    from .registry import get_registry, hookimpl, register_linear_kernel, reset_registry  # noqa: F401
    from .scalar_type import *  # noqa: F401,F403
    from .selection import *  # noqa: F401,F403
    from .settings import *  # noqa: F401,F403
