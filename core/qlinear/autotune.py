"""Autotune (``QLINEAR_AUTOTUNE=1``): time every usable kernel on the layer's real shape, per M
bucket, and dispatch each call to the fastest.

Selection step 5 (docs/architecture.md). The winners are cached on disk as JSON, keyed by device,
torch version, the config and the candidate kernels, so a second process (or a second layer of
the same shape) does not time again. Each candidate re-lays its own copy of the weights; after
tuning only the winners' copies are kept.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import LayerConfig
from .families import act_dtype
from .kernel import LinearKernel
from .layers import make_layer

# Upper M of each bucket and the M timed to represent it.
BUCKETS = ((1, 1), (16, 16), (64, 64), (256, 256), (1 << 62, 1024))


def cache_path() -> Path:
    base = os.environ.get("QLINEAR_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "qlinear")
    return Path(base) / "autotune.json"


def cache_key(config: LayerConfig, kernels: list[type[LinearKernel]], device: torch.device) -> str:
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    names = ",".join(sorted(k.full_name() for k in kernels))
    return f"{dev}|torch {torch.__version__}|{config.describe()}|{names}"


def _load() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _store(key: str, winners: dict[str, str]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load()
        data[key] = winners
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs a re-tune next time


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
    and return the dispatch table plus {bucket upper M: winning kernel name}."""
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
    if not all(str(hi) in winners for hi, _ in BUCKETS):
        for hi, m in BUCKETS:
            xs = [torch.randn(m, k, device=device).to(act) for _ in range(3)]
            best = None
            for cls in kernels:
                kern, layer = build(cls)
                try:
                    t = time_calls(lambda i: kern.apply_weights(layer, xs[i % 3]), device, max_time=max_time, warmup=2)
                except Exception:  # noqa: BLE001 - a kernel that fails on this M just loses the bucket
                    continue
                if best is None or t.median_us < best[0]:
                    best = (t.median_us, cls.full_name())
            winners[str(hi)] = best[1] if best else kernels[0].full_name()
        _store(key, winners)
    by_name = {c.full_name(): c for c in kernels}
    limits, entries = [], []
    for hi, _ in BUCKETS:
        limits.append(hi)
        entries.append(build(by_name.get(winners[str(hi)], kernels[0])))
    for name in list(built):  # drop the losers' weight copies
        if name not in set(winners.values()):
            del built[name]
    return Dispatch(limits, entries), winners
