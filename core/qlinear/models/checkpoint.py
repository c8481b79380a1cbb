"""Read and write compressed-tensors checkpoints: a directory with ``config.json`` (carrying a
``quantization_config``) and safetensors shards, as llm-compressor writes them and vLLM reads them.

``load_quantized(path)`` builds the transformers model from its config with empty (meta)
parameters, matches the quantization config's targets/ignore to its linears with
compressed-tensors' own matcher, checks every tensor's name, shape and dtype against the layer it
belongs to from the shard headers alone, and only then reads tensors, one at a time from the
memory-mapped shards, straight into ``QuantLinear`` layers (no float copy of a quantized weight is
ever made). ``save_quantized(model, dir)`` writes the same format back.

transformers, compressed_tensors and safetensors are imported inside the functions (the
``qlinear[models]`` extra), so ``import qlinear`` stays light.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import warnings
from typing import Any

import torch

from ..nn import QuantLinear
from ..tables import check_regime
from . import ct_format as ct
from .ct_format import CheckpointError
from .quantize import progress, set_submodule

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _need(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ImportError(f"{module} is needed for compressed-tensors checkpoints: pip install 'qlinear[models]' ({e})") from None


# ---- shards -------------------------------------------------------------------------------------
class Shards:
    """The tensors of a checkpoint directory: name -> (file, shape, dtype), read from the headers;
    tensors are read one at a time from memory-mapped files (``get``)."""

    def __init__(self, path: str) -> None:
        safe_open = _need("safetensors").safe_open
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no *.safetensors shards")
        self.meta: dict[str, tuple[str, tuple[int, ...], torch.dtype]] = {}
        self._open = safe_open
        self._handles: dict[str, Any] = {}
        for name in files:
            file = os.path.join(path, name)
            if not os.path.exists(file):
                raise CheckpointError(f"{name}: listed in model.safetensors.index.json but missing")
            with safe_open(file, framework="pt") as h:
                for key in h.keys():
                    sl = h.get_slice(key)
                    dt = _ST_DTYPES.get(sl.get_dtype())
                    if dt is None:
                        raise CheckpointError(f"{key}: dtype {sl.get_dtype()} is not supported")
                    self.meta[key] = (file, tuple(sl.get_shape()), dt)

    def __contains__(self, key: str) -> bool:
        return key in self.meta

    def get(self, key: str, device: torch.device | str = "cpu") -> torch.Tensor:
        file = self.meta[key][0]
        h = self._handles.get(file)
        if h is None:
            h = self._handles[file] = self._open(file, framework="pt", device=str(device)).__enter__()
        return h.get_tensor(key)

    def close(self) -> None:
        for h in self._handles.values():
            h.__exit__(None, None, None)
        self._handles.clear()


# ---- building the empty model -------------------------------------------------------------------
@contextlib.contextmanager
def _meta_parameters():
    """Create parameters on the meta device (no memory), buffers as usual: a model's computed
    buffers (rotary inverse frequencies) are then real, its weights come from the checkpoint."""
    orig = torch.nn.Module.register_parameter

    def register(self, name, param):
        orig(self, name, param)
        if param is not None and param.device.type != "meta":
            p = self._parameters[name]
            self._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = orig


def from_config(cls, config, dtype: torch.dtype):
    """``cls._from_config`` with the model dtype; transformers renamed ``torch_dtype`` to ``dtype`` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    if hasattr(cls, "_from_config"):
        return cls._from_config(config, **{key: dtype})
    return cls.from_config(config, **{key: dtype})


def _empty_model(config, dtype: torch.dtype):
    transformers = _need("transformers")
    archs = getattr(config, "architectures", None) or []
    cls = getattr(transformers, archs[0], None) if archs else None
    with _meta_parameters():
        return from_config(cls or transformers.AutoModelForCausalLM, config, dtype)


# ---- the quantization config --------------------------------------------------------------------
def _parse_quant_config(qc: dict):
    """compressed-tensors parses the config (presets, enum values, validation); act-order groups,
    which compressed-tensors 0.20 no longer accepts but older llm-compressor checkpoints carry,
    are taken off first and remembered per group."""
    qcfg_mod = _need("compressed_tensors.quantization")
    qc = copy.deepcopy(qc)
    where = "config.json quantization_config"
    if qc.get("quant_method", "compressed-tensors") != "compressed-tensors":
        raise CheckpointError(f"{where}.quant_method: {qc.get('quant_method')!r} is not compressed-tensors")
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise CheckpointError(f"{where}.config_groups: missing or empty")
    actorder = {}
    for gname, g in groups.items():
        w = g.get("weights") if isinstance(g, dict) else None
        if isinstance(w, dict) and (w.get("actorder") in ("group", "dynamic") or w.get("actorder") is True):
            actorder[gname] = True
            w.pop("actorder")
    for key in ("sparsity_config", "transform_config"):
        if qc.get(key):
            raise CheckpointError(f"{where}.{key}: sparse / transformed checkpoints are not supported")
    try:
        parsed = qcfg_mod.QuantizationConfig.model_validate(qc)
    except Exception as e:  # pydantic's ValidationError names the field path
        raise CheckpointError(f"{where}: compressed-tensors rejects it: {e}") from None
    return parsed, actorder


def _scheme_dict(scheme, actorder: bool) -> dict:
    d = {k: (getattr(scheme, k).model_dump() if getattr(scheme, k) is not None else None)
         for k in ("weights", "input_activations", "output_activations")}
    for k in ("weights", "input_activations", "output_activations"):
        if d[k] is not None:
            d[k] = {f: (v.value if hasattr(v, "value") else v) for f, v in d[k].items()}
    d["actorder_group"] = actorder
    return d


# ---- load -----------------------------------------------------------------------------------------
def load_quantized(path: str, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                   kernel: str | None = None, regime: str | None = None, show_progress: bool = True,
                   keep_checkpoint: bool = True):
    """A compressed-tensors checkpoint directory -> its transformers model, quantized linears as
    ``QuantLinear`` (chosen for ``regime``: ``"decode"``, ``"prefill"`` or ``"mixed"``, default
    ``QLINEAR_REGIME`` or mixed; see ``QuantLinear``).

    ``device`` (default CPU) receives every tensor; ``dtype`` is the activation / unquantized
    parameter dtype (default: the config's ``torch_dtype``/``dtype`` when 16-bit, else bfloat16).
    Raises ``CheckpointError`` naming the config field or tensor when the checkpoint is
    malformed or holds a scheme qlinear cannot run; all of that is checked before any tensor is
    read. ``keep_checkpoint=False``: don't keep the as-stored tensors ``save_quantized`` needs.
    """
    if regime is not None:
        check_regime(regime)
    transformers = _need("transformers")
    cmatch = _need("compressed_tensors.utils.match")
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(f"{cfg_file}: no config.json (a checkpoint directory holds config.json and *.safetensors)")
    with open(cfg_file) as f:
        raw = json.load(f)
    qc = raw.get("quantization_config")
    if not isinstance(qc, dict):
        raise CheckpointError(f"{cfg_file}: no quantization_config; not a compressed-tensors checkpoint")
    qconf, actorder = _parse_quant_config(qc)
    where = "config.json quantization_config"
    status = getattr(qconf.quantization_status, "value", qconf.quantization_status)
    if status != "compressed":
        raise CheckpointError(f"{where}.quantization_status: {status!r}; qlinear loads compressed checkpoints")
    if qconf.kv_cache_scheme is not None:
        raise CheckpointError(f"{where}.kv_cache_scheme: a quantized KV cache is not supported")
    top_format = qconf.format

    config = transformers.AutoConfig.from_pretrained(path)
    if dtype is None:
        cd = raw.get("dtype") or raw.get("torch_dtype")
        cd = _DTYPES.get(cd, cd) if isinstance(cd, str) else cd
        dtype = cd if cd in (torch.float16, torch.bfloat16) else torch.bfloat16
    device = torch.device(device) if device is not None else torch.device("cpu")
    bare = copy.deepcopy(config)
    if hasattr(bare, "quantization_config"):
        del bare.quantization_config  # transformers must not apply its own quantizer to the skeleton
    model = _empty_model(bare, dtype)
    model.config.quantization_config = qc

    shards = Shards(path)
    try:
        plan = _plan(model, qconf, actorder, top_format, shards, dtype, cmatch)
        return _load(model, plan, shards, device, dtype, kernel, regime, show_progress, keep_checkpoint)
    finally:
        shards.close()


def _plan(model, qconf, actorder, top_format, shards: Shards, dtype, cmatch):
    """Everything checked from the config and the shard headers; returns (quantized, plain)."""
    where = "config.json quantization_config"
    targets = {}
    group_of = {}
    for gname, scheme in qconf.config_groups.items():
        for t in scheme.targets:
            targets[t] = scheme
            group_of[id(scheme)] = gname
    quantized = []  # (module name, LayerConfig, {local: full key}, bias key)
    claimed: set[str] = set()
    for name, mod in cmatch.match_named_modules(model, list(targets), qconf.ignore or []):
        if not isinstance(mod, torch.nn.Linear):
            raise CheckpointError(f"{name}: a {type(mod).__name__} matches quantization_config targets; only Linear layers are supported")
        matched = cmatch.match_targets(name, mod, targets)
        scheme = targets[matched[0]]
        gname = group_of[id(scheme)]
        gwhere = f"{where}.config_groups.{gname}"
        fmt = getattr(scheme.format, "value", scheme.format) or top_format
        if fmt == "mixed-precision" or fmt is None:
            raise CheckpointError(f"{gwhere}.format: missing (the top-level format is {top_format!r})")
        sd = _scheme_dict(scheme, actorder.get(gname, False))
        n, k = mod.out_features, mod.in_features
        c = ct.layer_config(sd, fmt, n, k, dtype, gwhere)
        keys = {}
        for local, (_, _, req) in ct.expected_tensors(c).items():
            full = f"{name}.{local}"
            if full in shards:
                keys[local] = full
            elif req:
                raise CheckpointError(f"{full}: missing from the checkpoint (required by {gwhere}, format {fmt})")
        prefix = name + "."
        for key in shards.meta:
            if key.startswith(prefix) and "." not in key[len(prefix):]:
                local = key[len(prefix):]
                if local == "bias":
                    continue
                if local == "weight_g_idx" and not getattr(c, "has_g_idx", False):
                    raise CheckpointError(f"{key}: present, but {gwhere}.weights.actorder is not 'group'")
                _, shape, dt = shards.meta[key]
                ct.check_tensor(c, local, shape, dt, key)
        bias = None
        if mod.bias is not None:
            bias = f"{name}.bias"
            _check_plain(shards, bias, tuple(mod.bias.shape))
        claimed.update(f"{prefix}{x}" for x in list(keys) + ["bias"])
        quantized.append((name, c, keys, bias))

    qnames = {q[0] for q in quantized}
    plain = []  # (all names of one parameter, checkpoint key)
    groups: dict[int, list[str]] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        if pname.rpartition(".")[0] in qnames:
            continue
        groups.setdefault(id(p), []).append(pname)
    for names in groups.values():
        key = next((n for n in names if n in shards), None)
        if key is None:
            raise CheckpointError(f"{names[0]}: missing from the checkpoint")
        p = model.get_parameter(names[0])
        _check_plain(shards, key, tuple(p.shape))
        plain.append((names, key))
        claimed.add(key)
    extra = [k for k in shards.meta if k not in claimed]
    stray = [k for k in extra if any(k.startswith(q + ".") for q in qnames)]
    if stray:
        raise CheckpointError(f"{stray[0]}: unexpected tensor of a quantized layer")
    if extra:
        warnings.warn(f"load_quantized: {len(extra)} checkpoint tensors belong to no parameter and were not read: {extra[:5]}", stacklevel=3)
    return quantized, plain


def _check_plain(shards: Shards, key: str, shape: tuple[int, ...]) -> None:
    if key not in shards:
        raise CheckpointError(f"{key}: missing from the checkpoint")
    _, got, dt = shards.meta[key]
    if got != shape:
        raise CheckpointError(f"{key}: shape {list(got)}, the model expects {list(shape)}")
    if not dt.is_floating_point:
        raise CheckpointError(f"{key}: dtype {dt}; an unquantized parameter must be floating point")


def _load(model, plan, shards: Shards, device, dtype, kernel, regime, show_progress, keep_checkpoint):
    quantized, plain = plan
    for names, key in plain:
        t = shards.get(key, device).to(device=device, dtype=dtype)
        p = torch.nn.Parameter(t, requires_grad=False)
        for n in names:
            mod_name, _, leaf = n.rpartition(".")
            mod = model.get_submodule(mod_name) if mod_name else model
            mod._parameters[leaf] = p
    for name, c, keys, bias_key in progress(quantized, "load", show_progress):
        tensors = {local: shards.get(full, device).to(device) for local, full in keys.items()}
        params = ct.params_from_checkpoint(c, tensors, name + ".")
        bias = shards.get(bias_key, device).to(device=device, dtype=dtype) if bias_key else None
        layer = QuantLinear(c, params, bias, kernel, regime)
        if keep_checkpoint:
            layer.checkpoint_params = params
        set_submodule(model, name, layer)
    left = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if left:  # _plan covers every parameter; this would be a bug, so say so loudly
        raise RuntimeError(f"load_quantized: parameters left unloaded: {left[:5]}")
    model.eval()
    return model


# ---- save -----------------------------------------------------------------------------------------
def _size(s: int | str) -> int:
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*", s.upper())
    if not m:
        raise ValueError(f"max_shard_size: {s!r} is not like '5GB' or a byte count")
    return int(float(m.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[m.group(2)])


def save_quantized(model: torch.nn.Module, path: str, *, max_shard_size: int | str = "5GB") -> None:
    """Write ``model`` (its ``QuantLinear`` layers made by ``quantize_model`` / ``load_quantized``)
    as a compressed-tensors checkpoint: ``config.json`` with ``quantization_config`` + safetensors."""
    save_file = _need("safetensors.torch").save_file
    import compressed_tensors

    from .fuse import FusedProjection

    fused = [n for n, m in model.named_modules() if isinstance(m, FusedProjection) and m.fused is not None]
    if fused:
        raise ValueError(f"{fused[0]}: fused projections ({len(fused)} groups) have no compressed-tensors names; "
                         "save the model quantized without fuse_projections")
    qlayers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    if not qlayers:
        raise ValueError("model: has no QuantLinear layer to save")
    tensors: dict[str, torch.Tensor] = {}
    schemes: list[tuple[str, dict, list[str]]] = []  # (format, scheme, module names)
    for name, layer in qlayers.items():
        src = getattr(layer, "checkpoint_params", None)
        if src is None:
            raise ValueError(f"{name}: keeps no as-quantized parameters (made with keep_checkpoint=False, "
                             "or not by quantize_model / load_quantized), so it cannot be saved")
        fmt, scheme = ct.scheme_for(layer.config)
        for local, t in ct.checkpoint_from_params(layer.config, src).items():
            tensors[f"{name}.{local}"] = t.cpu()
        if layer.bias is not None:
            tensors[f"{name}.bias"] = layer.bias.detach().cpu().contiguous()
        for f_, s_, names in schemes:
            if f_ == fmt and s_ == scheme:
                names.append(name)
                break
        else:
            schemes.append((fmt, scheme, [name]))
    qprefixes = tuple(n + "." for n in qlayers)
    seen: dict[int, str] = {}
    buffers = [(n, b) for n, b in model.named_buffers() if _persistent(model, n)]
    for pname, p in list(model.named_parameters()) + buffers:
        if pname.startswith(qprefixes) or id(p) in seen:  # a tied parameter is stored once
            continue
        seen[id(p)] = pname
        tensors[pname] = p.detach().cpu().contiguous()

    plain_linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    groups = {}
    for i, (fmt, scheme, names) in enumerate(schemes):
        targets = ["Linear"] if len(schemes) == 1 else names
        groups[f"group_{i}"] = {"targets": targets, "format": fmt, "output_activations": None, **scheme}
    formats = {f for f, _, _ in schemes}
    qc = {
        "quant_method": "compressed-tensors",
        "format": formats.pop() if len(formats) == 1 else "mixed-precision",
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": plain_linears if len(schemes) == 1 else [],
        "kv_cache_scheme": None,
        "global_compression_ratio": None,
        "version": compressed_tensors.__version__,
    }
    os.makedirs(path, exist_ok=True)
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        d = cfg.to_dict()
    else:
        d = {}
    d["quantization_config"] = qc
    _write_shards(tensors, path, _size(max_shard_size), save_file)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(d, f, indent=2, sort_keys=True, default=str)
    gen = getattr(model, "generation_config", None)
    if gen is not None and hasattr(gen, "save_pretrained"):
        with contextlib.suppress(Exception):
            gen.save_pretrained(path)


def _persistent(model: torch.nn.Module, name: str) -> bool:
    mod_name, _, leaf = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    return leaf not in getattr(mod, "_non_persistent_buffers_set", set())


def _write_shards(tensors: dict[str, torch.Tensor], path: str, limit: int, save_file) -> None:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        t = tensors[key]
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = t
        size += nbytes
    for old in os.listdir(path):  # stale shards of an earlier save would be read as part of this one
        if old.endswith(".safetensors") or old == "model.safetensors.index.json":
            os.remove(os.path.join(path, old))
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], os.path.join(path, "model.safetensors"), metadata=meta)
        return
    weight_map = {}
    total = len(shards)
    for i, sh in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{total:05d}.safetensors"
        save_file(sh, os.path.join(path, fname), metadata=meta)
        weight_map.update({k: fname for k in sh})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                   "weight_map": weight_map}, f, indent=2, sort_keys=True)
