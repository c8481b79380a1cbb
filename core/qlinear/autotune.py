"""Autotune (``QLINEAR_AUTOTUNE=1``): time every usable kernel on the layer's real shape, per M
bucket, and dispatch each call to the fastest.

Selection step 5 (docs/architecture.md). The winners are cached on disk as JSON
(``$QLINEAR_CACHE_DIR/autotune.json``), keyed by device, torch version, the config, the candidate
kernels and their providers' versions, so a second process (or a second layer of the same shape)
does not time again. The file is shared safely by concurrent processes and survives corruption
(``cache_file.JsonCache``: merge under an OS file lock, atomic replace, validated reads).

Each candidate re-lays its own copy of the weights; after tuning only the winners' copies are
kept. A candidate that holds much more memory than the kernel selection would have picked (the
emulation's float32 weight: 8x an int4 one) does not take part: a faster bucket is not worth
keeping a second, larger weight resident.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache_file import JsonCache, cache_root
from .config import LayerConfig
from .families import act_dtype
from .kernel import LinearKernel
from .layers import make_layer

# Upper M of each bucket and the M timed to represent it.
BUCKETS = ((1, 1), (16, 16), (64, 64), (256, 256), (1 << 62, 1024))


KEY_VERSION = "autotune-v2"  # bump when what a cached winner means changes
# A candidate may hold at most this many times the bytes of the kernel selection picks (weights,
# re-laid copies, caches on the layer); same-format re-layouts are ~1x, a float32 copy of int4 is ~8x.
MAX_BYTES_RATIO = 1.5


def cache_path() -> Path:
    return cache_root() / "autotune.json"


def _valid_entry(key: str, value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _cache() -> JsonCache:
    return JsonCache(cache_path(), _valid_entry)


def _provider_version(k: type[LinearKernel]) -> str:
    from .registry import get_registry

    info = get_registry().providers.get(k.provider)
    if info is not None and info.version:
        return info.version
    top = sys.modules.get(k.__module__.split(".")[0])
    return str(getattr(top, "__version__", "?"))


def cache_key(config: LayerConfig, kernels: list[type[LinearKernel]], device: torch.device) -> str:
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    names = ",".join(sorted(f"{k.full_name()}={_provider_version(k)}" for k in kernels))
    return f"{KEY_VERSION}|{dev}|torch {torch.__version__}|{config.describe()}|{names}"


def _load() -> dict:
    return _cache().read()


def _store(key: str, winners: dict[str, str]) -> None:
    _cache().update({key: winners})


def held_bytes(*objs) -> int:
    """Bytes of the distinct tensor storages reachable from modules (parameters, buffers, plain
    tensor attributes, recursively) and kernel objects (their tensor attributes)."""
    seen: dict[int, int] = {}

    def add(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            st = t.untyped_storage()
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())

    for o in objs:
        mods = o.modules() if isinstance(o, torch.nn.Module) else [o]
        for m in mods:
            for t in vars(m).values():
                add(t)
            if isinstance(m, torch.nn.Module):
                for t in m.parameters(recurse=False):
                    add(t)
                for t in m.buffers(recurse=False):
                    add(t)
    return sum(seen.values())


@dataclass
class Dispatch:
    """Per-bucket (upper M, kernel, its layer) in ascending M."""

    limits: list[int]
    entries: list[tuple[LinearKernel, torch.nn.Module]]

    def pick(self, m: int) -> tuple[LinearKernel, torch.nn.Module]:
        return self.entries[min(bisect.bisect_left(self.limits, m), len(self.entries) - 1)]


def tune(config: LayerConfig, params: dict[str, torch.Tensor], kernels: list[type[LinearKernel]],
         max_time: float = 0.2) -> tuple[Dispatch, dict[str, str]]:
    """Build every kernel on its own copy of ``params``, time it per M bucket (or read the cache),
    and return the dispatch table plus {bucket upper M: winning kernel name}. ``kernels[0]`` is the
    kernel selection picked: the memory yardstick and the fallback."""
    from .timing import time_calls  # the measuring primitive, imported only when tuning

    device = next(iter(params.values())).device
    key = cache_key(config, kernels, device)
    winners: dict[str, str] = _load().get(key, {})
    built: dict[str, tuple[LinearKernel, torch.nn.Module]] = {}

    def build(cls):
        if cls.full_name() not in built:
            layer = make_layer(config, {k: v.clone() for k, v in params.items()})
            kern = cls.create(config)
            kern.process_weights_after_loading(layer)
            built[cls.full_name()] = (kern, layer)
        return built[cls.full_name()]

    n, k = config.shape_nk
    act = act_dtype(config)
    by_name = {c.full_name(): c for c in kernels}
    if not all(winners.get(str(hi)) in by_name for hi, _ in BUCKETS):
        winners = {}
        budget = MAX_BYTES_RATIO * held_bytes(*build(kernels[0]))
        racers = []
        for cls in kernels:
            if held_bytes(*build(cls)) <= budget:
                racers.append(cls)
            else:
                del built[cls.full_name()]  # too big to keep resident: never a winner
        for hi, m in BUCKETS:
            xs = [torch.randn(m, k, device=device).to(act) for _ in range(3)]
            best = None
            for cls in racers:
                kern, layer = build(cls)
                try:
                    t = time_calls(lambda i: kern.apply_weights(layer, xs[i % 3]), device, max_time=max_time, warmup=2)
                except Exception:  # noqa: BLE001 - a kernel that fails on this M just loses the bucket
                    continue
                if best is None or t.median_us < best[0]:
                    best = (t.median_us, cls.full_name())
            winners[str(hi)] = best[1] if best else kernels[0].full_name()
        _store(key, winners)
    for name in list(built):  # drop the losers' weight copies before building any cached winner
        if name not in set(winners.values()):
            del built[name]
    limits, entries = [], []
    for hi, _ in BUCKETS:
        limits.append(hi)
        entries.append(build(by_name[winners[str(hi)]]))
    return Dispatch(limits, entries), winners
