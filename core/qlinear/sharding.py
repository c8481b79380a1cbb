"""Tensor-parallel sharding of quantized parameters: which slice of each parameter rank r of w holds.

Two kinds of split, as in Megatron / vLLM:

* **column** (split N, the output features): every parameter indexed by output row is cut into w
  equal row ranges; the activation stays whole on every rank. A fused module (qkv, gate_up) is cut
  per logical part (``output_sizes``): rank r holds ``q_r | k_r | v_r``.
* **row** (split K, the input features): every parameter indexed by input column is cut into w
  ranges; each rank sees its K slice of the activation and the partial outputs are summed.

The primitive, ``shard_params``, reads only the rank's slice of each parameter: a value may be a
tensor or any lazy view that has ``get_shape()`` and slice indexing (safetensors' ``get_slice``),
so a checkpoint can be loaded straight into shards. Names are qlinear's as-loaded names
(``qlinear.layers``). ``layout="checkpoint"`` means int8/fp8 ``weight`` is stored [N, K] (as
compressed-tensors writes it); ``layout="loaded"`` means the in-memory [K, N] view
``quantize_layer_params`` makes.

What each family needs (a split that breaks one of these is refused, with the reason):

* wNa16: ``weight_packed`` packs 32/bits codes along K, so a row split must land on a pack
  boundary; group scales / zero points are cut at group boundaries; zero points pack along N, so a
  column split must land on a pack boundary too. Act-order (``g_idx``) row slices keep the whole
  scale (and zero-point) table and the rank's slice of ``g_idx``, as vLLM does for Marlin
  (``is_k_full`` False): the rank's input channels reference groups anywhere in K. Per-channel
  scales (group -1) are replicated on a row split (each covers the whole input row).
* INT8 / FP8 per-tensor and per-channel: per-channel scales follow N; per-tensor scales and static
  activation scales are replicated. ``azp_adj`` (asymmetric INT8) is recomputed from the rank's
  weight slice. Fused parts with different per-tensor weight scales: FP8 requantizes each part to
  the largest scale (vLLM's ``requantize_with_max_scale``), INT8 turns them into per-channel scales
  (vLLM's ``convert_to_channelwise``); their static activation scales take the largest value (FP8)
  or must agree (INT8, whose zero point would change the codes).
* block FP8: 128x128 scale tiles must not be split, so N (column) or K (row) slices are multiples
  of the block (a ragged last block is allowed at the end of the whole dimension only).
* NVFP4 / MXFP4 / MXFP8: scales per 16 / 32 elements along K; a row split lands on a scale block
  boundary. Scales are sharded in their linear (as-loaded) layout; kernels swizzle them afterwards
  for the partition shape. NVFP4's global scales are replicated and must agree across fused parts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import torch

from .config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    LayerConfig,
    MPLinearLayerConfig,
)
from .formats import azp_adj, to_e4m3

COLUMN, ROW = "column", "row"
_MICRO_BLOCK = {"nvfp4": 16, "mxfp4": 32, "mxfp8": 32}


class ShardingError(ValueError):
    """A layer cannot be split this way; the message says which field and why."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_split(kind: str, rank: int, world: int) -> None:
    if kind not in (COLUMN, ROW):
        raise ShardingError(f"kind: {kind!r} is not 'column' or 'row'")
    if not (isinstance(world, int) and world >= 1):
        raise ShardingError(f"world: expected a positive int, got {world!r}")
    if not (isinstance(rank, int) and 0 <= rank < world):
        raise ShardingError(f"rank: expected an int in [0, {world}), got {rank!r}")


def _nk(c: LayerConfig) -> tuple[int, int]:
    if isinstance(c, MPLinearLayerConfig):
        k, n = c.full_weight_shape
        return n, k
    if c.shape_nk is None:
        raise ShardingError(f"config.weight_shape: a layer to shard needs its weight shape ({c.describe()})")
    return c.shape_nk


def _parts(n: int, output_sizes: Sequence[int] | None) -> list[int]:
    parts = list(output_sizes) if output_sizes else [n]
    if any(not isinstance(p, int) or p <= 0 for p in parts) or sum(parts) != n:
        raise ShardingError(f"output_sizes: {list(parts)} must be positive ints summing to N={n}")
    return parts


# ---- per-rank config ------------------------------------------------------------------------------
def partition_config(c: LayerConfig, kind: str, world: int, output_sizes: Sequence[int] | None = None) -> LayerConfig:
    """The config of one rank's slice of full layer ``c`` (the same on every rank): the partition
    shape every kernel is gated on. Raises ``ShardingError`` naming the reason a split can't be made."""
    _check_split(kind, 0, world)
    n, k = _nk(c)
    fam = c.family
    if isinstance(c, MPLinearLayerConfig) and c.partition_weight_shape != c.full_weight_shape:
        raise ShardingError(f"partition_weight_shape: {c.partition_weight_shape} is already a slice of "
                            f"{c.full_weight_shape}; shard the full layer's config")
    parts = _parts(n, output_sizes)
    if kind == ROW and output_sizes and len(parts) > 1:
        raise ShardingError("output_sizes: logical parts are a column-parallel notion (a row split cuts K)")
    if kind == COLUMN:
        for p in parts:
            if p % world:
                raise ShardingError(f"output_sizes: output part of {p} features does not split evenly over {world} ranks")
        np_, kp = n // world, k
    else:
        if k % world:
            raise ShardingError(f"weight_shape: K={k} input features do not split evenly over {world} ranks")
        np_, kp = n, k // world
    # the unit a slice boundary must land on, per family and split
    unit, why = 1, ""
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        pf, g = c.pack_factor, c.group_size
        if kind == ROW:
            unit, why = pf, f"{c.bits}-bit codes pack {pf} per int32 word along K"
            if g != -1 and not c.has_g_idx:
                unit, why = math.lcm(g, pf), f"group_size={g}: a slice must hold whole scale groups (and whole int32 words)"
        elif c.zero_points:
            unit, why = pf, f"zero points pack {pf} per int32 word along N"
    elif fam == "fp8_block":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        bn, bk = c.weight_block
        unit, why = (bn, f"a {bn}x{bk} weight scale block would be split along N") if kind == COLUMN else \
            (bk, f"a {bn}x{bk} weight scale block (and a 1x{bk} activation group) would be split along K")
    elif fam in _MICRO_BLOCK and kind == ROW:
        unit, why = _MICRO_BLOCK[fam], f"one {fam} scale covers {_MICRO_BLOCK[fam]} elements along K"
    if world > 1:
        for i, p in enumerate(parts if kind == COLUMN else [k]):
            local = p // world
            off = sum(parts[:i]) if kind == COLUMN else 0
            if local % unit or off % unit:
                what = f"part {i} ({p} features, offset {off})" if len(parts) > 1 else f"{p} features"
                raise ShardingError(f"{'output_sizes' if kind == COLUMN else 'weight_shape'}: a {kind}-parallel split of "
                                    f"{what} over {world} ranks gives slices of {local}, not on a multiple of {unit}: {why}")
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        try:
            return dataclasses.replace(c, partition_weight_shape=(kp, np_))
        except ValueError as e:
            raise ShardingError(f"partition_weight_shape: the {kind}-parallel slice ({kp}, {np_}) is invalid: {e}") from e
    try:
        return dataclasses.replace(c, weight_shape=(np_, kp))
    except ValueError as e:
        raise ShardingError(f"weight_shape: the {kind}-parallel slice ({np_}, {kp}) is invalid: {e}") from e


# ---- lazy slicing -------------------------------------------------------------------------------
def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else tuple(t.get_shape())


def _read(t: Any, dim: int | None = None, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Read ``t[start:stop]`` along ``dim`` (everything when dim is None), touching only that range
    of a lazy view. Tensors are cloned so a shard never keeps the full tensor's storage alive."""
    shape = _shape(t)
    if dim is None or not shape:
        out = t[...]
    else:
        idx = [slice(None)] * len(shape)
        idx[dim] = slice(start, stop)
        out = t[tuple(idx)]
    return out.clone() if isinstance(t, torch.Tensor) else out


class _TransposedView:
    """A [K, N] tensor seen as [N, K] for slicing (the loaded layout of int8/fp8 ``weight``)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def get_shape(self):
        return list(self.t.shape[::-1])

    def __getitem__(self, idx):
        return self.t.t()[idx].contiguous()


def _rule(c: LayerConfig, name: str, kind: str) -> tuple[int | None, int, bool]:
    """(dim, unit, cdiv_end) for parameter ``name`` in the checkpoint layout: the dimension a
    ``kind`` split cuts (None: replicated), how many features one stored index covers, and whether
    the last index may cover a ragged tail."""
    fam = c.family
    col = kind == COLUMN
    if fam == "mp":
        assert isinstance(c, MPLinearLayerConfig)
        pf, g = c.pack_factor, c.group_size
        keep_groups = g == -1 or c.has_g_idx  # per-channel or act-order: the whole scale table on every rank
        return {
            "weight_packed": (0, 1, False) if col else (1, pf, False),
            "weight_scale": (0, 1, False) if col else ((None, 1, False) if keep_groups else (1, g, False)),
            "weight_zero_point": (0, pf, False) if col else ((None, 1, False) if keep_groups else (1, g, False)),
            "weight_g_idx": (None, 1, False) if col else (0, 1, False),
        }.get(name, (None, 1, False))
    if fam in ("int8", "fp8"):
        if name == "weight":
            return (0, 1, False) if col else (1, 1, False)
        if name == "weight_scale":
            per_channel = c.is_channelwise if isinstance(c, Int8ScaledMMLinearLayerConfig) else \
                c.weight_quant_key.scale.group_shape.is_per_channel()
            return (0, 1, False) if (col and per_channel) else (None, 1, False)  # [N, 1] follows N; [1] is whole
        return (None, 1, False)
    if fam == "fp8_block":
        assert isinstance(c, FP8ScaledMMLinearLayerConfig)
        bn, bk = c.weight_block
        if name == "weight":
            return (0, 1, False) if col else (1, 1, False)
        if name in ("weight_scale_inv", "weight_scale"):
            return (0, bn, True) if col else (1, bk, True)
        return (None, 1, False)
    if fam in _MICRO_BLOCK:
        per_byte = 2 if fam in ("nvfp4", "mxfp4") else 1
        if name == "weight":
            return (0, 1, False) if col else (1, per_byte, False)
        if name == "weight_scale":
            return (0, 1, False) if col else (1, _MICRO_BLOCK[fam], False)
        return (None, 1, False)
    raise ShardingError(f"config.family: unknown family {fam!r}")


def _slice_param(t: Any, dim: int | None, unit: int, cdiv_end: bool, start: int, stop: int, full: int, name: str) -> torch.Tensor:
    if dim is None:
        return _read(t)
    shape = _shape(t)
    if dim >= len(shape):
        raise ShardingError(f"{name}.shape: {list(shape)} has no dimension {dim} to split")
    a = start // unit
    b = _cdiv(stop, unit) if (cdiv_end and stop == full) else stop // unit
    if start % unit or (b * unit != stop and not (cdiv_end and stop == full)):
        raise ShardingError(f"{name}: the slice [{start}, {stop}) does not land on its {unit}-feature units")
    want = _cdiv(full, unit) if cdiv_end else full // unit
    if shape[dim] != want:
        raise ShardingError(f"{name}.shape: dimension {dim} is {shape[dim]}, expected {want} for {full} features")
    return _read(t, dim, a, b)


# ---- the primitive ------------------------------------------------------------------------------
def shard_params(c: LayerConfig, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], kind: str, rank: int,
                 world: int, *, output_sizes: Sequence[int] | None = None,
                 layout: str = "loaded") -> tuple[LayerConfig, dict[str, torch.Tensor]]:
    """Full layer ``c`` + its parameters -> (rank config, rank parameters in the as-loaded layout).

    ``params``: one mapping name -> full tensor (or lazy view) for the whole layer, or, for a fused
    column-parallel module, a sequence of such mappings, one per logical part (each with that part's
    own full shapes, as checkpoints store q/k/v or gate/up); then ``output_sizes`` defaults to the
    parts' widths. Only the rank's slice of each parameter is read.
    """
    _check_split(kind, rank, world)
    if layout not in ("loaded", "checkpoint"):
        raise ShardingError(f"layout: {layout!r} is not 'loaded' or 'checkpoint'")
    per_part = not isinstance(params, Mapping)
    groups = list(params) if per_part else [params]
    n, k = _nk(c)
    if per_part:
        if kind != COLUMN:
            raise ShardingError("params: a sequence of per-part parameters is for column-parallel fused modules")
        widths = [_part_width(c, p, layout) for p in groups]
        if output_sizes is not None and list(output_sizes) != widths:
            raise ShardingError(f"output_sizes: {list(output_sizes)} do not match the parts' widths {widths}")
        output_sizes = widths
    rc = partition_config(c, kind, world, output_sizes)
    parts = _parts(n, output_sizes)
    fam = c.family

    def view(p: Mapping[str, Any], name: str) -> Any:
        t = p[name]
        if layout == "loaded" and fam in ("int8", "fp8") and name == "weight" and isinstance(t, torch.Tensor):
            return _TransposedView(t)
        return t

    if kind == ROW:
        kp = k // world
        out = {}
        for name in groups[0]:
            if name == "azp_adj":
                continue
            dim, unit, ragged = _rule(c, name, kind)
            out[name] = _slice_param(view(groups[0], name), dim, unit, ragged, rank * kp, (rank + 1) * kp, k, name)
    else:
        # slice every part, then join along N; a single-part layer is one "part" covering all of N
        if per_part:
            sources = [(p, 0, w, w) for p, w in zip(groups, parts)]
        else:
            offs = [sum(parts[:i]) for i in range(len(parts))]
            sources = [(groups[0], o, w, n) for o, w in zip(offs, parts)]
        pieces: dict[str, list[torch.Tensor]] = {}
        for p, off, w, full in sources:
            local = w // world
            for name in p:
                if name == "azp_adj":
                    continue
                dim, unit, ragged = _rule(c, name, kind)
                a, b = off + rank * local, off + (rank + 1) * local
                pieces.setdefault(name, []).append(_slice_param(view(p, name), dim, unit, ragged, a, b, full, name))
        out, rc = _join_parts(c, rc, pieces)
    if fam in ("int8", "fp8") and "weight" in out:
        out["weight"] = out["weight"].t()  # the loaded layout: a [K, N] view of the [N, K] codes
    if fam == "int8" and not c.input_symmetric:
        out["azp_adj"] = azp_adj(out["weight"])
    if fam == "fp8_block" and "weight_scale" in out and "weight_scale_inv" not in out:
        out["weight_scale_inv"] = out.pop("weight_scale")
    if fam == "nvfp4" and "weight_global_scale" in out and "input_global_scale" in out:
        igs, gs = out["input_global_scale"].float(), out["weight_global_scale"].float()
        out["input_global_scale_inv"] = 1.0 / igs
        out["alpha"] = 1.0 / (igs * gs)
    return rc, out


def _part_width(c: LayerConfig, p: Mapping[str, Any], layout: str = "loaded") -> int:
    """N of one logical part, from its main weight ([K, N] for INT8/FP8 in the loaded layout)."""
    fam = c.family
    if fam == "mp":
        return _shape(p["weight_packed"])[0]
    transposed = layout == "loaded" and fam in ("int8", "fp8") and isinstance(p["weight"], torch.Tensor)
    return _shape(p["weight"])[1 if transposed else 0]


def _join_parts(c: LayerConfig, rc: LayerConfig, pieces: dict[str, list[torch.Tensor]]):
    """Concatenate the per-part slices along N. A replicated value (per-tensor scale, g_idx) that
    is the same in every part is kept once; one that differs is reconciled the way vLLM does for
    fused modules, or refused."""
    out: dict[str, torch.Tensor] = {}
    split = [nm for nm in pieces if _rule(c, nm, COLUMN)[0] is not None]
    for name in split:
        ts = pieces[name]
        out[name] = torch.cat(ts, _rule(c, name, COLUMN)[0]) if len(ts) > 1 else ts[0]
    fam = c.family
    for name in (nm for nm in pieces if nm not in split):
        ts = pieces[name]
        if all(t.shape == ts[0].shape and torch.equal(t, ts[0]) for t in ts[1:]):
            out[name] = ts[0]
            continue
        vals = [t.float().reshape(()) for t in ts] if all(t.numel() == 1 for t in ts) else None
        if fam == "fp8" and name == "weight_scale" and vals:
            # vLLM's requantize_with_max_scale: one per-tensor scale, the largest; each part's codes
            # are rescaled to it (exact for the largest part, one E4M3 rounding for the others)
            smax = torch.stack(vals).max()
            rows, chunks = 0, []
            for v, ws in zip(vals, pieces["weight"]):
                seg = out["weight"][rows:rows + ws.shape[0]]
                chunks.append(to_e4m3(seg.float() * (v / smax)))
                rows += ws.shape[0]
            out["weight"], out[name] = torch.cat(chunks, 0), smax.reshape(1)
        elif fam == "int8" and name == "weight_scale" and vals:
            # vLLM's convert_to_channelwise: each part's per-tensor scale repeated over its rows
            out[name] = torch.cat([v.reshape(1, 1).expand(ws.shape[0], 1) for v, ws in zip(vals, pieces["weight"])], 0)
            rc = dataclasses.replace(rc, is_channelwise=True)
        elif fam == "fp8" and name in ("input_scale", "input_scale_ub") and vals:
            out[name] = torch.stack(vals).max().reshape(1)  # vLLM: one static activation scale, the largest
        else:
            raise ShardingError(f"{name}: the fused parts carry different values and a {fam} layer holds one; "
                                f"quantize the parts with a shared {name} (llm-compressor fuses them for qkv/gate_up)")
    return out, rc
