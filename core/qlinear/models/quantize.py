"""``quantize_model``: swap a float model's ``nn.Linear`` layers for ``QuantLinear``, in place.

Works on any ``nn.Module``. Every layer's config is checked and (for static-scale schemes) every
calibration statistic gathered before the first layer is replaced, so a refusal leaves the model
as it was. The new layers keep their as-quantized parameters in ``checkpoint_params`` (the kernel
may re-lay its own copies) so ``save_quantized`` can write them unchanged.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any, Iterable, Iterator

import torch

from ..layers import quantize_layer_params
from ..nn import QuantLinear, scheme_config
from ..tables import check_regime

# schemes whose activation scale is static, calibrated from sample activations
STATIC_SCHEMES = ("int8-static", "int8-static-asym", "fp8-tensor", "nvfp4")


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """``lm_head`` matches ``lm_head`` and ``model.lm_head``; globs (``*.mlp.*``) match the full
    name or a dotted suffix; ``re:<regex>`` searches the full name."""
    for p in patterns:
        if p.startswith("re:"):
            if re.search(p[3:], name):
                return True
        elif fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, "*." + p):
            return True
    return False


def progress(items: list, desc: str, enabled: bool = True) -> Iterator:
    """tqdm when it is installed, otherwise a one-line counter on stderr."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, desc=desc, leave=False)
        return
    total = len(items)
    for i, item in enumerate(items, 1):
        yield item
        print(f"\r{desc}: {i}/{total}", end="" if i < total else "\n", file=sys.stderr, flush=True)


def find_linears(model: torch.nn.Module, include: Iterable[str] | None, skip: Iterable[str]) -> list[tuple[str, torch.nn.Linear]]:
    """(name, module) of every ``nn.Linear`` to quantize, in model order, each module once."""
    out, seen = [], set()
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        if include is not None and not name_matches(name, include):
            continue
        if name_matches(name, skip) or id(mod) in seen:
            continue
        seen.add(id(mod))
        out.append((name, mod))
    return out


def _run_calibration(model: torch.nn.Module, layers: list[tuple[str, torch.nn.Linear]], calib: Any) -> dict[str, torch.Tensor]:
    """Run ``calib`` through the float model; per layer, the column-wise min and max of its inputs
    ([2, K]: all a static per-tensor scale needs, without keeping the activations)."""
    stats: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            mm = torch.stack((x.amin(0), x.amax(0)))
            old = stats.get(name)
            stats[name] = mm if old is None else torch.stack((torch.minimum(old[0], mm[0]), torch.maximum(old[1], mm[1])))
        return fn

    handles = [mod.register_forward_pre_hook(hook(name)) for name, mod in layers]
    try:
        with torch.no_grad():
            if callable(calib):
                calib(model)
            elif isinstance(calib, dict):
                model(**calib)
            elif isinstance(calib, torch.Tensor):
                model(calib)
            elif isinstance(calib, (list, tuple)):
                for batch in calib:
                    model(**batch) if isinstance(batch, dict) else model(batch)
            else:
                raise TypeError(f"calib: expected a tensor of model inputs, a dict of keyword inputs, a list of either or a callable(model), got {type(calib).__name__}")
    finally:
        for h in handles:
            h.remove()
    missing = [name for name, _ in layers if name not in stats]
    if missing:
        raise ValueError(f"calib: the calibration run never reached {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return stats


def quantize_model(model: torch.nn.Module, scheme: str, *, skip: Iterable[str] = ("lm_head",),
                   include: Iterable[str] | None = None, calib: Any = None,
                   kernel: str | None = None, dtype: torch.dtype | None = None, regime: str | None = None,
                   show_progress: bool = True, keep_checkpoint: bool = True) -> dict[str, QuantLinear]:
    """Replace the model's ``nn.Linear`` layers with ``QuantLinear`` layers of ``scheme``, in place.

    ``include`` / ``skip``: name patterns (see ``name_matches``); by default every linear but
    ``lm_head``. Static-scale schemes (``int8-static*``, ``fp8-tensor``, ``nvfp4``) need ``calib``:
    model inputs (a tensor of input ids, a dict of keyword inputs, a list of either) or a
    ``callable(model)`` that runs the float model. ``dtype`` is the layers' activation dtype
    (default: each weight's dtype when 16-bit, else bfloat16). ``regime``: the M range the layers are
    chosen for (``"decode"`` for token generation, ``"prefill"``, ``"mixed"``; default
    ``QLINEAR_REGIME`` or mixed), see ``QuantLinear``. ``keep_checkpoint=False`` drops the
    as-quantized copy ``save_quantized`` needs, saving memory when a kernel re-lays its weights.
    Returns {name: new layer}.
    """
    if regime is not None:
        check_regime(regime)
    skip = (skip,) if isinstance(skip, str) else tuple(skip or ())
    include = (include,) if isinstance(include, str) else include
    layers = find_linears(model, include, skip)
    if not layers:
        raise ValueError(f"include/skip: no nn.Linear layer of {type(model).__name__} is left to quantize")

    # check every layer's config before anything changes
    configs = {}
    for name, lin in layers:
        w = lin.weight
        act = dtype or (w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16)
        try:
            configs[name] = scheme_config(scheme, w.shape[0], w.shape[1], act)
        except ValueError as e:
            raise ValueError(f"{name}: {scheme!r} cannot quantize this [{w.shape[0]}, {w.shape[1]}] layer: {e} "
                             "(leave it out with skip=...)") from None
    static = scheme.strip().lower() in STATIC_SCHEMES
    if static and calib is None:
        raise ValueError(f"calib: {scheme!r} has a static activation scale; pass sample model inputs as calib=")
    stats = _run_calibration(model, layers, calib) if static else {}

    new: dict[str, QuantLinear] = {}
    for name, lin in progress(layers, f"quantize {scheme}", show_progress):
        c = configs[name]
        w = lin.weight.detach()
        params = quantize_layer_params(c, w.float(), calib_x=stats.get(name))
        params = {k: v.to(w.device) for k, v in params.items()}
        bias = lin.bias.detach().to(act_dtype(c)) if lin.bias is not None else None
        layer = QuantLinear(c, params, bias, kernel, regime)
        if keep_checkpoint:
            layer.checkpoint_params = params
        new[name] = layer

    # swap them all in at the end: a failure above leaves the model untouched. A Linear shared
    # under several names is replaced under each of them.
    where = {}
    for n, m in model.named_modules(remove_duplicate=False):
        where.setdefault(id(m), []).append(n)
    for name, lin in layers:
        for alias in where[id(lin)]:
            set_submodule(model, alias, new[name])
    return new


def act_dtype(c) -> torch.dtype:
    """The activation dtype of any layer config (its field name differs per family)."""
    for f in ("act_type", "input_dtype", "act_dtype"):
        if hasattr(c, f):
            return getattr(c, f)
    raise ValueError(f"config: {type(c).__name__} names no activation dtype")


def set_submodule(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)
