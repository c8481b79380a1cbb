"""The compressed-tensors checkpoint format, one layer at a time: qlinear layer config <-> quantization
scheme, and the layer's parameters (vLLM's as-loaded layout) <-> the tensors a checkpoint stores.

A scheme here is the plain dict compressed-tensors writes under ``config_groups.<group>`` (the
``weights`` / ``input_activations`` QuantizationArgs and the group's ``format``); the loader parses
it with the ``compressed_tensors`` package first, so field values arrive normalised. Every refusal
names the config field (``where``) or the tensor it is about.

What differs between the two layouts:
- INT8 / FP8 ``weight`` is [N, K] on disk, the [K, N] transposed view on the layer;
- block FP8's scale is ``weight_scale`` on disk, ``weight_scale_inv`` on the layer;
- pack-quantized stores ``weight_shape`` ([N, K], int64) beside the packed codes;
- NVFP4 / MXFP4 codes are ``weight_packed`` on disk, ``weight`` on the layer; the layer also carries
  NVFP4's derived ``input_global_scale_inv`` and ``alpha``, INT8-asymmetric's ``azp_adj``;
- scales of FP8 / INT8 layers are float32 on the layer, whatever float dtype the file holds;
- W4A8 (pack-quantized int4 weights with dynamic per-token FP8 activations) may omit
  ``weight_chan_scale``; the layer then gets ones.
The integer codes themselves are bit-for-bit the same (uint4b8 = signed int4 + 8, zero points too).
"""

from __future__ import annotations

import torch

from .. import formats as F
from .. import quant_key as qk
from ..config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    LayerConfig,
    MPLinearLayerConfig,
    MxFp4LinearLayerConfig,
    Mxfp8LinearLayerConfig,
    NvFp4LinearLayerConfig,
    W4A8LinearLayerConfig,
)
from ..scalar_type import scalar_types

FLOATS = (torch.float16, torch.bfloat16, torch.float32)
# formats this module reads and writes (compressed-tensors' CompressionFormat values)
PACK, INT, FLOAT, NAIVE = "pack-quantized", "int-quantized", "float-quantized", "naive-quantized"
NVFP4, MXFP4, MXFP8 = "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp8-quantized"
FORMATS = (PACK, INT, FLOAT, NAIVE, NVFP4, MXFP4, MXFP8)


class CheckpointError(ValueError):
    """A checkpoint qlinear cannot load; the message names the config field or tensor."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _fail(where: str, msg: str):
    raise CheckpointError(f"{where}: {msg}")


def _args(scheme: dict, key: str) -> dict | None:
    a = scheme.get(key)
    return dict(a) if a else None


def _is(a: dict, where: str, **want) -> None:
    for k, v in want.items():
        got = a.get(k)
        ok = got in v if isinstance(v, tuple) else got == v
        if not ok:
            _fail(f"{where}.{k}", f"{got!r} is not supported here (expected {v!r})")


# ---- scheme -> layer config ---------------------------------------------------------------------
def layer_config(scheme: dict, fmt: str, n: int, k: int, dtype: torch.dtype, where: str) -> LayerConfig:
    """The qlinear config for an [N, K] linear stored with ``scheme`` in format ``fmt``.

    ``scheme`` holds ``weights`` / ``input_activations`` / ``output_activations`` as dicts (field
    names of compressed-tensors' QuantizationArgs, enum values as strings) and ``actorder_group``
    (True when the checkpoint's weights carry a ``weight_g_idx``)."""
    w = _args(scheme, "weights")
    a = _args(scheme, "input_activations")
    wf, af = f"{where}.weights", f"{where}.input_activations"
    if w is None:
        _fail(wf, "missing: qlinear loads weight-quantized linears only")
    if scheme.get("output_activations"):
        _fail(f"{where}.output_activations", "output quantization is not supported")
    if w.get("dynamic") not in (False, None):
        _fail(f"{wf}.dynamic", f"{w.get('dynamic')!r}: weights must be statically quantized")
    if fmt not in FORMATS:
        _fail(f"{where}.format", f"{fmt!r} is not supported; qlinear reads {', '.join(FORMATS)}")
    try:
        return _layer_config(w, a, fmt, n, k, dtype, wf, af, bool(scheme.get("actorder_group")))
    except CheckpointError:
        raise
    except ValueError as e:  # a config constructor refused the combination: say where it came from
        _fail(where, str(e))


def _layer_config(w, a, fmt, n, k, dtype, wf, af, actorder):
    strat = w.get("strategy")
    if fmt == PACK:
        _is(w, wf, type="int", num_bits=(4, 8))
        _is(w, wf, strategy=("group", "channel"))
        group = -1 if strat == "channel" else w.get("group_size")
        if group != -1 and (not isinstance(group, int) or group <= 0):
            _fail(f"{wf}.group_size", f"{group!r}: a group strategy needs a positive group size")
        if a is not None:  # W4A8: int4 weights, FP8 activations quantized per token at run time
            _is(w, wf, num_bits=4, symmetric=True)
            _is(a, af, type="float", num_bits=8, strategy="token", dynamic=True)
            if actorder:
                _fail(f"{wf}.actorder", "activation order (g_idx) is not supported with FP8 activations (W4A8)")
            return W4A8LinearLayerConfig((n, k), group, dtype)
        sym = w.get("symmetric", True)
        bits = w["num_bits"]
        wt = {(4, True): scalar_types.uint4b8, (8, True): scalar_types.uint8b128,
              (4, False): scalar_types.uint4, (8, False): scalar_types.uint8}[(bits, bool(sym))]
        return MPLinearLayerConfig((k, n), (k, n), wt, dtype, group, not sym, actorder)
    if actorder:
        _fail(f"{wf}.actorder", "activation order (g_idx) only applies to pack-quantized weights")
    if fmt in (INT, FLOAT, NAIVE):
        if w.get("type") == "int":
            _is(w, wf, num_bits=8, symmetric=True, strategy=("tensor", "channel"))
            if a is None:
                _fail(af, "missing: INT8 weights without quantized activations are stored pack-quantized (W8A16)")
            _is(a, af, type="int", num_bits=8, strategy=("tensor", "token"))
            static = not a.get("dynamic")
            if static and a.get("strategy") != "tensor":
                _fail(f"{af}.strategy", "static INT8 activation scales are per tensor")
            if not static and a.get("strategy") != "token":
                _fail(f"{af}.strategy", "dynamic INT8 activation scales are per token")
            return Int8ScaledMMLinearLayerConfig(static, strat == "channel", bool(a.get("symmetric", True)), (n, k), dtype)
        _is(w, wf, type="float", num_bits=8, symmetric=True)
        if strat == "group" and w.get("group_size") == 32:
            _fail(f"{where_of(wf)}.format", f"{fmt!r} with 32-element groups is MXFP8: expected format {MXFP8!r}")
        if a is None:
            _fail(af, "missing: weight-only FP8 (FP8 W8A16) is not a qlinear scheme")
        _is(a, af, type="float", num_bits=8, symmetric=True)
        if strat == "block":
            if list(w.get("block_structure") or []) != [128, 128]:
                _fail(f"{wf}.block_structure", f"{w.get('block_structure')!r}: qlinear's block FP8 uses [128, 128]")
            _is(a, af, strategy="group", group_size=128, dynamic=True)
            return FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k), dtype)
        _is(w, wf, strategy=("tensor", "channel"))
        wkey = qk.kFp8StaticTensorSym if strat == "tensor" else qk.kFp8StaticChannelSym
        _is(a, af, strategy=("tensor", "token"))
        if a.get("strategy") == "token":
            if not a.get("dynamic"):
                _fail(f"{af}.dynamic", "per-token activation scales must be dynamic")
            akey = qk.kFp8DynamicTokenSym
        else:
            akey = qk.kFp8DynamicTensorSym if a.get("dynamic") else qk.kFp8StaticTensorSym
        return FP8ScaledMMLinearLayerConfig(wkey, akey, (n, k), dtype)
    if fmt == NVFP4:
        _is(w, wf, type="float", num_bits=4, group_size=16, strategy="tensor_group", symmetric=True)
        if a is None:
            _fail(af, "missing: NVFP4A16 (weight-only) is not a qlinear scheme; qlinear's nvfp4 quantizes activations too")
        _is(a, af, type="float", num_bits=4, group_size=16, strategy="tensor_group", dynamic="local")
        return NvFp4LinearLayerConfig((n, k), dtype)
    if fmt == MXFP4:
        _is(w, wf, type="float", num_bits=4, group_size=32, strategy="group", symmetric=True)
        if a is None:
            _fail(af, "missing: MXFP4A16 (weight-only) is not a qlinear scheme; qlinear's mxfp4 quantizes activations to MXFP4 too")
        _is(a, af, type="float", num_bits=4, group_size=32, strategy="group", dynamic=True)
        return MxFp4LinearLayerConfig((n, k), dtype)
    # MXFP8
    _is(w, wf, type="float", num_bits=8, group_size=32, strategy="group", symmetric=True)
    if a is None:
        _fail(af, "missing: MXFP8A16 (weight-only) is not a qlinear scheme; qlinear's mxfp8 quantizes activations to MXFP8 too")
    _is(a, af, type="float", num_bits=8, group_size=32, strategy="group", dynamic=True)
    return Mxfp8LinearLayerConfig((n, k), dtype)


def where_of(field: str) -> str:
    """``a.b.weights`` -> ``a.b`` (the config group a field sits in)."""
    return field.rsplit(".", 1)[0]


# ---- layer config -> scheme ---------------------------------------------------------------------
def _qargs(num_bits, type_, strategy, *, symmetric=True, dynamic=False, group_size=None, **extra) -> dict:
    d = {"num_bits": num_bits, "type": type_, "strategy": strategy, "symmetric": symmetric,
         "dynamic": dynamic, "group_size": group_size}
    d.update(extra)
    return d


def scheme_for(c: LayerConfig) -> tuple[str, dict]:
    """(format, scheme dict with ``weights`` / ``input_activations``) that stores layers of config ``c``."""
    fam = c.family
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        strat = "channel" if c.group_size == -1 else "group"
        w = _qargs(c.bits, "int", strat, symmetric=not c.zero_points,
                   group_size=None if c.group_size == -1 else c.group_size)
        if c.has_g_idx:
            w["actorder"] = "group"
        return PACK, {"weights": w, "input_activations": None}
    if fam == "w4a8":
        assert isinstance(c, W4A8LinearLayerConfig)
        w = _qargs(4, "int", "channel" if c.group_size == -1 else "group", group_size=None if c.group_size == -1 else c.group_size)
        return PACK, {"weights": w, "input_activations": _qargs(8, "float", "token", dynamic=True)}
    if fam == "int8":
        assert isinstance(c, Int8ScaledMMLinearLayerConfig)
        w = _qargs(8, "int", "channel" if c.is_channelwise else "tensor")
        st = c.is_static_input_scheme
        a = _qargs(8, "int", "tensor" if st else "token", symmetric=c.input_symmetric, dynamic=not st)
        return INT, {"weights": w, "input_activations": a}
    if fam == "fp8":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        w = _qargs(8, "float", "channel" if c.weight_quant_key.scale.group_shape.is_per_channel() else "tensor")
        ak = c.activation_quant_key.scale
        a = _qargs(8, "float", "token" if ak.group_shape.is_per_token() else "tensor", dynamic=not ak.static)
        return FLOAT, {"weights": w, "input_activations": a}
    if fam == "fp8_block":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        w = _qargs(8, "float", "block", block_structure=list(c.weight_block))
        a = _qargs(8, "float", "group", dynamic=True, group_size=c.activation_quant_key.scale.group_shape.col)
        return FLOAT, {"weights": w, "input_activations": a}
    if fam == "nvfp4":
        e4m3 = "torch.float8_e4m3fn"
        w = _qargs(4, "float", "tensor_group", group_size=16, scale_dtype=e4m3)
        a = _qargs(4, "float", "tensor_group", dynamic="local", group_size=16, scale_dtype=e4m3)
        return NVFP4, {"weights": w, "input_activations": a}
    if fam in ("mxfp4", "mxfp8"):
        bits = 4 if fam == "mxfp4" else 8
        w = _qargs(bits, "float", "group", group_size=32, scale_dtype="torch.uint8")
        a = _qargs(bits, "float", "group", dynamic=True, group_size=32, scale_dtype="torch.uint8")
        return (MXFP4 if fam == "mxfp4" else MXFP8), {"weights": w, "input_activations": a}
    raise ValueError(f"config.family: {fam!r} has no compressed-tensors format")


# ---- tensors ----------------------------------------------------------------------------------------
ONE = "one"  # a single value: [1] or a 0-dim scalar


def expected_tensors(c: LayerConfig) -> dict[str, tuple[tuple[int, ...] | str, tuple[torch.dtype, ...], bool]]:
    """name -> (shape, allowed dtypes, required) of the tensors a checkpoint stores for one layer."""
    n, k = c.shape_nk
    fam = c.family
    fp8 = (torch.float8_e4m3fn,)
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        g = 1 if c.group_size == -1 else k // c.group_size
        pf = c.pack_factor
        return {
            "weight_packed": ((n, k // pf), (torch.int32,), True),
            "weight_scale": ((n, g), FLOATS, True),
            "weight_zero_point": ((_cdiv(n, pf), g), (torch.int32,), c.zero_points),
            "weight_g_idx": ((k,), (torch.int32, torch.int64), c.has_g_idx),
            "weight_shape": ((2,), (torch.int64, torch.int32), False),
        }
    if fam == "w4a8":
        return {
            "weight_packed": ((n, k // 8), (torch.int32,), True),
            "weight_scale": ((n, k // c.effective_group_size), (*fp8, *FLOATS), True),  # type: ignore[attr-defined]
            "weight_chan_scale": ((n, 1), FLOATS, False),
            "weight_shape": ((2,), (torch.int64, torch.int32), False),
        }
    if fam in ("int8", "fp8"):
        if isinstance(c, Int8ScaledMMLinearLayerConfig):
            ch, static, wdt = c.is_channelwise, c.is_static_input_scheme, (torch.int8,)
        else:
            ch = c.weight_quant_key.scale.group_shape.is_per_channel()
            static, wdt = c.activation_quant_key.scale.static, fp8
        spec = {
            "weight": ((n, k), wdt, True),
            "weight_scale": ((n, 1) if ch else ONE, FLOATS, True),
            "input_scale": (ONE, FLOATS, static),
        }
        if isinstance(c, Int8ScaledMMLinearLayerConfig):
            spec["input_zero_point"] = (ONE, (torch.int8, torch.int32), static and not c.input_symmetric)
        return spec
    if fam == "fp8_block":
        bn, bk = c.weight_block
        return {"weight": ((n, k), fp8, True), "weight_scale": ((_cdiv(n, bn), _cdiv(k, bk)), FLOATS, True)}
    if fam == "nvfp4":
        return {"weight_packed": ((n, k // 2), (torch.uint8,), True), "weight_scale": ((n, k // 16), fp8, True),
                "weight_global_scale": (ONE, FLOATS, True), "input_global_scale": (ONE, FLOATS, True)}
    if fam == "mxfp4":
        return {"weight_packed": ((n, k // 2), (torch.uint8,), True), "weight_scale": ((n, k // 32), (torch.uint8,), True)}
    if fam == "mxfp8":
        return {"weight": ((n, k), fp8, True), "weight_scale": ((n, k // 32), (torch.uint8,), True)}
    raise ValueError(f"config.family: {fam!r} has no compressed-tensors format")


def check_tensor(c: LayerConfig, name: str, shape: tuple[int, ...], dtype: torch.dtype, where: str) -> None:
    """Raise naming ``where`` (the tensor's full name) if a stored tensor can't be this layer's ``name``."""
    spec = expected_tensors(c).get(name)
    if spec is None:
        _fail(where, f"unexpected tensor for {c.describe()}; expected {sorted(expected_tensors(c))}")
    want, dtypes, _ = spec
    if dtype not in dtypes:
        _fail(where, f"dtype {dtype} is not one of {[str(d) for d in dtypes]}")
    if want == ONE:
        if len(shape) > 1 or (len(shape) == 1 and shape[0] != 1):
            _fail(where, f"shape {list(shape)}: expected a single value ([1] or a scalar)")
    elif tuple(shape) != tuple(want):
        _fail(where, f"shape {list(shape)}: expected {list(want)}")


def missing_tensors(c: LayerConfig, present) -> list[str]:
    return [name for name, (_, _, req) in expected_tensors(c).items() if req and name not in present]


def params_from_checkpoint(c: LayerConfig, t: dict[str, torch.Tensor], where: str = "") -> dict[str, torch.Tensor]:
    """Stored tensors of one layer (local names) -> the layer's parameters in qlinear's layout."""
    fam = c.family
    if fam in ("mp", "w4a8") and "weight_shape" in t and [int(v) for v in t["weight_shape"].tolist()] != list(c.shape_nk):
        _fail(f"{where}weight_shape", f"{t['weight_shape'].tolist()} does not match the packed weight's [N, K] = {list(c.shape_nk)}")
    if fam == "w4a8":
        ch = t.get("weight_chan_scale")
        n = c.shape_nk[0]
        return {"weight_packed": t["weight_packed"], "weight_scale": t["weight_scale"],
                "weight_chan_scale": torch.ones(n, 1, dtype=torch.float32, device=t["weight_packed"].device) if ch is None
                else ch.float().reshape(n, 1)}
    if fam == "mp":
        p = {name: t[name] for name in ("weight_packed", "weight_scale", "weight_zero_point") if name in t}
        if c.has_g_idx:  # type: ignore[union-attr]
            p["weight_g_idx"] = t["weight_g_idx"].to(torch.int32)
        return p
    if fam in ("int8", "fp8"):
        p = {"weight": t["weight"].t(), "weight_scale": t["weight_scale"].float()}
        if "input_scale" in t:
            p["input_scale"] = t["input_scale"].float().reshape(1)
        if isinstance(c, Int8ScaledMMLinearLayerConfig):
            if "input_zero_point" in t:
                p["input_zero_point"] = t["input_zero_point"].to(torch.int32).reshape(1)
            if not c.input_symmetric:
                p["azp_adj"] = F.azp_adj(p["weight"])
        return p
    if fam == "fp8_block":
        return {"weight": t["weight"], "weight_scale_inv": t["weight_scale"].float()}
    if fam == "nvfp4":
        gs = t["weight_global_scale"].float().reshape(1)
        igs = t["input_global_scale"].float().reshape(1)
        return {"weight": t["weight_packed"], "weight_scale": t["weight_scale"], "weight_global_scale": gs,
                "input_global_scale": igs, "input_global_scale_inv": 1.0 / igs, "alpha": 1.0 / (igs * gs)}
    if fam == "mxfp4":
        return {"weight": t["weight_packed"], "weight_scale": t["weight_scale"]}
    if fam == "mxfp8":
        return {"weight": t["weight"], "weight_scale": t["weight_scale"]}
    raise ValueError(f"config.family: {fam!r} has no compressed-tensors format")


def checkpoint_from_params(c: LayerConfig, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layer's parameters (as loaded, before any kernel re-lay) -> the tensors a checkpoint stores."""
    fam = c.family
    one = lambda x: x.reshape(1).contiguous()  # noqa: E731  (single values are [1] on disk)
    if fam == "mp":
        out = {"weight_packed": p["weight_packed"], "weight_scale": p["weight_scale"],
               "weight_shape": torch.tensor(list(c.shape_nk), dtype=torch.int64)}
        if p.get("weight_zero_point") is not None:
            out["weight_zero_point"] = p["weight_zero_point"]
        if p.get("weight_g_idx") is not None:
            out["weight_g_idx"] = p["weight_g_idx"].to(torch.int32)
    elif fam == "w4a8":
        out = {"weight_packed": p["weight_packed"], "weight_scale": p["weight_scale"], "weight_chan_scale": p["weight_chan_scale"],
               "weight_shape": torch.tensor(list(c.shape_nk), dtype=torch.int64)}
    elif fam in ("int8", "fp8"):
        ws = p["weight_scale"]
        out = {"weight": p["weight"].t(), "weight_scale": ws if ws.dim() == 2 else one(ws)}
        if p.get("input_scale") is not None:
            out["input_scale"] = one(p["input_scale"])
        if p.get("input_zero_point") is not None:  # stored int8 like compressed-tensors' zp_dtype
            out["input_zero_point"] = one(p["input_zero_point"].to(torch.int8))
    elif fam == "fp8_block":
        out = {"weight": p["weight"], "weight_scale": p["weight_scale_inv"]}
    elif fam == "nvfp4":
        out = {"weight_packed": p["weight"], "weight_scale": p["weight_scale"],
               "weight_global_scale": one(p["weight_global_scale"]), "input_global_scale": one(p["input_global_scale"])}
    elif fam == "mxfp4":
        out = {"weight_packed": p["weight"], "weight_scale": p["weight_scale"]}
    elif fam == "mxfp8":
        out = {"weight": p["weight"], "weight_scale": p["weight_scale"]}
    else:
        raise ValueError(f"config.family: {fam!r} has no compressed-tensors format")
    return {k: v.detach().contiguous() for k, v in out.items()}
