"""Measured kernel tables: which usable kernel is fastest for (card, family, config, N, K, M).

A table is a JSON file made by ``qlinear tune`` (``qlinear.tune``; this module never imports it):
one row per (family, config, N, K, M, kernel) with that kernel's measured time on one card. The
selector reads tables here and only here; nothing is timed at selection.

Where tables live, first match wins:

1. ``$QLINEAR_CACHE_DIR/tables/*.json`` (default ``~/.cache/qlinear/tables``): a user's own, written
   by ``qlinear tune`` on their card; it overrides what the providers ship.
2. ``<provider package>/tables/*.json``: each installed provider ships the rows of its own kernels for
   the cards it was measured on (``qlinear tune --split-into-providers`` writes them). The rows of
   all installed providers for one card are merged, so any subset of providers can be installed and
   a third-party provider ships its own rows without touching the core. Rows of one card come from
   one ``qlinear tune`` run (same method, same card), so comparing them across files is fair.

Every kernel belongs to a provider, so the core ships no table of its own.

Within a source, a table of the same card (device name) is preferred to one of the same
architecture (``sm90`` for H100 and H200 alike).

A table *applies* to a layer when it has rows of the same family and config (shape aside) at a
shape near the layer's (each of N and K within 2x; the nearest wins), for kernels usable here. The
regime the caller declares picks the M the choice is judged over (``REGIMES``): the kernel with the
least summed time over the table's M in that range wins. Kernels that share one weight layout
(``LinearKernel.weight_layout``) need no second weight copy, so among those the layer dispatches per
M at call time (each M to the kernel the table says is fastest at the nearest measured M).

A row timed with another ``table_version`` of its kernel than the installed one (``kernel_version``,
absent = 0) is ignored: a kernel whose call path changed is judged only by rows timed after it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

FORMAT = 1
# Declared M range -> (lowest M, highest M) whose table rows judge the single choice.
REGIMES = {"decode": (1, 16), "prefill": (128, 1 << 62), "mixed": (1, 1 << 62)}
NEAR = 2.0  # a table shape applies when N and K are each within this factor of the layer's
_SHAPE_FIELDS = ("full_weight_shape", "partition_weight_shape", "weight_shape")


def check_regime(regime: str) -> str:
    r = (regime or "mixed").strip().lower()
    if r not in REGIMES:
        raise ValueError(f"regime: {regime!r} is not one of {', '.join(REGIMES)} (regime= or QLINEAR_REGIME)")
    return r


def config_key(config) -> str:
    """The config without its shape: ``MPLinearLayerConfig(weight_type=uint4b8, act_type=bfloat16, ...)``."""
    from .config import _fmt

    items = [(k, v) for k, v in vars(config).items() if k not in _SHAPE_FIELDS]
    return f"{type(config).__name__}({', '.join(f'{k}={_fmt(v)}' for k, v in items)})"


def arch_of(platform) -> str:
    """A table's architecture word: ``sm90`` (CUDA cc 9.0), ``rocm94``, ``xpu``, ``cpu``."""
    if platform.kind == "cuda" and platform.capability is not None:
        return f"sm{platform.capability}"
    if platform.kind == "rocm" and platform.capability is not None:
        return f"rocm{platform.capability}"
    return platform.kind


def device_of(platform) -> str:
    return platform.device_name if platform.kind in ("cuda", "rocm", "xpu") else (platform.cpu_model or platform.kind)


def file_stem(arch: str, device: str) -> str:
    """``sm90-nvidia-h200``: the file name a table of this card is written under."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in device.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{arch}-{slug}" if slug else arch


# ============================================================================================
# Loading (cached by path, size and mtime; a corrupt or foreign file is skipped with a warning)
# ============================================================================================
@dataclass
class Table:
    path: str
    source: str  # "user" or "provider <name>"
    arch: str
    device: str
    meta: dict
    # (family, config key) -> {(n, k) -> {m -> {kernel full name -> us}}}
    index: dict = field(default_factory=dict)
    # (family, config key, (n, k), m, kernel) -> the kernel's table_version the row was timed with
    # (only rows that name one: absent = 0)
    versions: dict = field(default_factory=dict)

    def stale(self, key, nk, m: int, kernel: str, cls) -> bool:
        """Whether this row of ``kernel`` was timed with another ``table_version`` than ``cls``'s."""
        return self.versions.get((*key, nk, m, kernel), 0) != cls.table_version


_loaded: dict[str, tuple[tuple[int, int], Table | None]] = {}


def parse_table(data: dict, path: str = "<memory>", source: str = "user") -> Table:
    """A table's JSON object -> ``Table``; ValueError naming the field when it is malformed."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"format: expected {FORMAT}, got {data.get('format') if isinstance(data, dict) else type(data).__name__}")
    for f in ("arch", "device", "rows"):
        if f not in data:
            raise ValueError(f"{f}: missing")
    t = Table(path, source, str(data["arch"]), str(data["device"]), {k: v for k, v in data.items() if k != "rows"})
    for i, r in enumerate(data["rows"]):
        try:
            key = (str(r["family"]), str(r["config"]))
            nk, m, us = (int(r["n"]), int(r["k"])), int(r["m"]), float(r["us"])
            kernel = str(r["kernel"])
            ver = int(r.get("kernel_version", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"rows[{i}]: {type(e).__name__}: {e}") from None
        if not (us > 0 and math.isfinite(us)):
            raise ValueError(f"rows[{i}].us: expected a positive time, got {us}")
        t.index.setdefault(key, {}).setdefault(nk, {}).setdefault(m, {})[kernel] = us
        if ver:
            t.versions[(*key, nk, m, kernel)] = ver
    return t


def _load(path: Path, source: str) -> Table | None:
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_size, st.st_mtime_ns)
    hit = _loaded.get(str(path))
    if hit and hit[0] == stamp:
        return hit[1]
    try:
        table = parse_table(json.loads(path.read_text()), str(path), source)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        warnings.warn(f"qlinear: skipping kernel table {path}: {e}", stacklevel=3)
        table = None
    _loaded[str(path)] = (stamp, table)
    return table


def user_dir() -> Path:
    base = os.environ.get("QLINEAR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "qlinear")
    return Path(base) / "tables"


def _provider_dirs() -> list[tuple[str, Path]]:
    import sys

    from .registry import get_registry

    out = []
    for name, info in sorted(get_registry().providers.items()):
        mod = sys.modules.get(info.module) if info.ok else None
        f = getattr(mod, "__file__", None)
        if f:
            out.append((f"provider {name}", Path(f).parent / "tables"))
    return out


def sources() -> list[list[tuple[str, Path]]]:
    """Source groups in precedence order; each group is [(label, directory)]."""
    return [[("user", user_dir())], _provider_dirs()]


def tables_for(platform, groups=None) -> list[list[Table]]:
    """For each source group, its tables for this platform: same card first, then same arch."""
    arch, dev = arch_of(platform), device_of(platform)
    out = []
    for group in (groups if groups is not None else sources()):
        same_card, same_arch = [], []
        for label, d in group:
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.json")):
                t = _load(p, label)
                if t is None or t.arch != arch:
                    continue
                (same_card if t.device == dev else same_arch).append(t)
        for ts in (same_card, same_arch):
            if ts:
                out.append(ts)
    return out


def table_report(platform, kernels: dict) -> list[dict]:
    """The tables that apply to ``platform``, in precedence order, for ``qlinear doctor``: path,
    source, card, rows, and per installed kernel (``kernels``: full name -> class) the rows timed with
    another ``table_version`` than the installed one (ignored by selection until re-timed)."""
    out = []
    for ts in tables_for(platform):
        for t in ts:
            rows, stale = 0, {}
            for key, by_nk in t.index.items():
                for nk, by_m in by_nk.items():
                    for m, row in by_m.items():
                        rows += len(row)
                        for n in row:
                            cls = kernels.get(n)
                            if cls is not None and t.stale(key, nk, m, n, cls):
                                stale[n] = stale.get(n, 0) + 1
            out.append({"path": t.path, "source": t.source, "device": t.device, "rows": rows, "stale": stale})
    return out


# ============================================================================================
# Deciding
# ============================================================================================
@dataclass
class Decision:
    kernel: str  # full name of the single choice (it owns the weight layout)
    regime: str
    shape: tuple[int, int]  # the table shape used (N, K)
    tables: list[str]  # the files whose rows decided
    device: str
    sums: dict[str, float]  # kernel -> summed us over the regime's M (only kernels with every row)
    regime_ms: list[int]
    per_m: dict[int, dict[str, float]]  # every measured M -> {kernel -> us}
    plan: list[tuple[int, str]] = field(default_factory=list)  # (upper M, kernel) ascending; >1 entry = per-M dispatch
    stale: list[str] = field(default_factory=list)  # kernels whose rows here were timed with another table_version
    stand_in: str | None = None  # the rows were timed with these activations instead ("bfloat16" for a float16 layer)

    def explain_lines(self) -> list[str]:
        src = ", ".join(os.path.basename(t) for t in self.tables)
        lines = [f"table {src} ({self.device}), rows at N={self.shape[0]} K={self.shape[1]}, "
                 f"regime {self.regime} (M {', '.join(map(str, self.regime_ms))})"
                 + (f", timed with {self.stand_in} activations (none with this layer's)" if self.stand_in else "") + ":"]
        for name, s in sorted(self.sums.items(), key=lambda kv: kv[1]):
            mark = " <- chosen" if name == self.kernel else ""
            lines.append(f"    {name:<55} {s:10.1f} us summed{mark}")
        lines.append("    per M (us): " + "; ".join(
            f"M={m} " + ", ".join(f"{n.split('.')[-1]} {us:.1f}" for n, us in sorted(row.items(), key=lambda kv: kv[1])[:3])
            for m, row in sorted(self.per_m.items())))
        if len(self.plan) > 1:
            lo = 1
            parts = []
            for hi, name in self.plan:
                parts.append(f"M {lo}..{hi if hi < (1 << 62) else 'inf'} -> {name}")
                lo = hi + 1
            lines.append("    per-M dispatch: " + "; ".join(parts))
        return lines


def _nearest_shape(shapes, n: int, k: int) -> tuple[int, int] | None:
    best = None
    for (tn, tk) in shapes:
        if max(tn, n) / min(tn, n) > NEAR or max(tk, k) / min(tk, k) > NEAR:
            continue
        d = abs(math.log(tn / n)) + abs(math.log(tk / k))
        if best is None or d < best[0]:
            best = (d, (tn, tk))
    return best[1] if best else None


def per_m_plan(per_m: dict[int, dict[str, float]], group: list[str], default: str, keep=(),
               min_gain: float = 0.0) -> list[tuple[int, str]]:
    """Each measured M's fastest kernel among ``group`` -> (upper M, kernel) steps, switching at the
    geometric middle between measured M; same-kernel neighbours merge. ``keep`` (kernels of the
    layout the layer has anyway): the fastest of them stays unless another is more than ``min_gain``
    faster (a kernel of another layout costs a weight copy: it must pay for it)."""
    ms = sorted(per_m)
    steps: list[tuple[int, str]] = []
    for i, m in enumerate(ms):
        row = {n: us for n, us in per_m[m].items() if n in group}
        name = min(row, key=row.get) if row else default
        kept = {n: us for n, us in row.items() if n in keep}
        if kept and name not in kept:
            own = min(kept, key=kept.get)
            if kept[own] <= row[name] * (1 + min_gain):
                name = own
        hi = int(math.floor(math.sqrt(m * ms[i + 1]))) if i + 1 < len(ms) else 1 << 62
        if steps and steps[-1][1] == name:
            steps[-1] = (hi, name)
        else:
            steps.append((hi, name))
    return steps or [(1 << 62, default)]


_OTHER_16BIT = {torch.float16: torch.bfloat16, torch.bfloat16: torch.float16}


def table_keys(config) -> list[tuple[tuple[str, str], str | None]]:
    """The (family, config key) rows of ``config`` may sit under, with the stand-in dtype's name: its
    own, then the same layer with the other 16-bit activation dtype. The kernels run both at the same
    speed (one instantiation per dtype, the same tiles: on the H200 the fp16 and bf16 decode steps of
    the weight-only formats agree within 4 %), and tables are usually timed in bf16 only; without this an fp16 layer would lose
    the measured choice and fall back to priority order."""
    from .families import family_of

    keys = [((config.family, config_key(config)), None)]
    fam = family_of(config)
    dt = getattr(config, fam.act_field, None)
    if dt in _OTHER_16BIT:
        other = _OTHER_16BIT[dt]
        changes = {fam.act_field: other}
        if getattr(config, fam.out_field, None) == dt:
            changes[fam.out_field] = other
        keys.append(((config.family, config_key(dataclasses.replace(config, **changes))), str(other).removeprefix("torch.")))
    return keys


def has_rows(config, platform, groups=None) -> bool:
    """Cheap pre-check (no gating): does any table for this platform hold rows of this config (or of
    its other-16-bit stand-in, ``table_keys``)?"""
    keys = [k for k, _ in table_keys(config)]
    return any(key in t.index for ts in tables_for(platform, groups) for t in ts for key in keys)


def decide(config, viable: list, platform, regime: str = "mixed", groups=None,
           per_m: bool = True) -> Decision | None:
    """The table decision for ``config`` among the usable kernel classes ``viable``, or None when no
    table applies (then the caller keeps priority order)."""
    regime = check_regime(regime)
    nk = config.shape_nk
    if nk is None or not viable:
        return None
    names = {k.full_name(): k for k in viable}
    lo, hi = REGIMES[regime]
    for key, stand_in in table_keys(config):
        d = _decide_key(key, stand_in, names, nk, lo, hi, regime, platform, groups, per_m)
        if d is not None:
            return d
    return None


def _decide_key(key, stand_in, names, nk, lo, hi, regime, platform, groups, per_m) -> Decision | None:
    for tables in tables_for(platform, groups):
        merged: dict[tuple[int, int], dict[int, dict[str, float]]] = {}
        used: dict[tuple[int, int], list[str]] = {}
        stale: dict[tuple[int, int], set[str]] = {}
        for t in tables:
            for shape, by_m in t.index.get(key, {}).items():
                for m, row in by_m.items():
                    mine = {}
                    for n, us in row.items():
                        if n not in names:
                            continue
                        if t.stale(key, shape, m, n, names[n]):
                            stale.setdefault(shape, set()).add(n)  # timed before the kernel changed how it runs
                            continue
                        mine[n] = us
                    if mine:
                        merged.setdefault(shape, {}).setdefault(m, {}).update(mine)
                        if t.path not in used.setdefault(shape, []):
                            used[shape].append(t.path)
        shape = _nearest_shape(merged, *nk)
        if shape is None:
            continue
        rows = merged[shape]
        rms = sorted(m for m in rows if lo <= m <= hi)
        if not rms:
            continue
        sums = {n: sum(rows[m][n] for m in rms) for n in names if all(n in rows[m] for m in rms)}
        if not sums:
            continue
        best = min(sums, key=lambda n: (sums[n], n))
        layout = getattr(names[best], "weight_layout", None)
        group = [n for n, k in names.items() if layout is not None and getattr(k, "weight_layout", None) == layout]
        plan = per_m_plan(rows, group, best) if per_m and len(group) > 1 else [(1 << 62, best)]
        tdev = tables[0].device
        return Decision(best, regime, shape, used[shape], tdev, sums, rms, rows, plan,
                        sorted(stale.get(shape, set()) - set(sums)), stand_in)
    return None
