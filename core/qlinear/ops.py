"""The ``qlinear::linear`` custom op: how ``torch.compile`` sees every kernel of every provider.

``QuantLinear.forward`` in eager mode calls its kernel directly (no dispatcher hop). Under
``torch.compile`` it calls ``torch.ops.qlinear.linear(x, bias, handle)`` instead: an opaque op with
a fake (meta) implementation, so Dynamo never traces into a provider's Python (locks, JIT loaders,
``hashlib``, ``functools.lru_cache`` — all things it cannot enter), the graph has no break whatever
the kernel, and the op passes ``torch.library.opcheck``. ``handle`` is a string naming the layer
(registered here when the layer is built, dropped when it is garbage-collected), the way engines
name attention layers in their own ops; the weights stay constants of the layer, not graph inputs.
The op's real implementation is the layer's eager call, so compiled and eager outputs are the
same kernel's.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Optional

import torch

_layers: dict[str, "weakref.ref"] = {}
_ids = itertools.count()
_lock = threading.Lock()


def register(module: torch.nn.Module) -> str:
    """A fresh handle for ``module`` (which has ``_run(x, bias)``, ``in_features``, ``out_features``,
    ``out_dtype``: the config's output dtype or None)."""
    with _lock:
        handle = f"qlinear{next(_ids)}"
        _layers[handle] = weakref.ref(module)
    weakref.finalize(module, _layers.pop, handle, None)
    return handle


def layer_of(handle: str) -> torch.nn.Module:
    ref = _layers.get(handle)
    mod = ref() if ref is not None else None
    if mod is None:
        raise RuntimeError(f"handle: no live qlinear layer is registered as {handle!r}")
    return mod


@torch.library.custom_op("qlinear::linear", mutates_args=())
def linear(x: torch.Tensor, bias: Optional[torch.Tensor], handle: str) -> torch.Tensor:
    """x [..., K] -> [..., N] through the kernel(s) of the layer named by ``handle``."""
    return layer_of(handle)._run(x, bias)


@linear.register_fake
def _linear_fake(x: torch.Tensor, bias: Optional[torch.Tensor], handle: str) -> torch.Tensor:
    mod = layer_of(handle)
    if x.shape[-1] != mod.in_features:
        raise ValueError(f"x.shape: last dimension must be K={mod.in_features}, got {tuple(x.shape)}")
    # the config's output dtype, else x's (bf16 for an already-quantized FP8 x), as every kernel does
    dt = mod.out_dtype or (torch.bfloat16 if x.dtype == torch.float8_e4m3fn else x.dtype)
    return x.new_empty((*x.shape[:-1], mod.out_features), dtype=dt)
