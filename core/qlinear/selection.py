"""ONE selector for every family: ``select(config) -> Selection``.

Candidates are the registered kernels of the config's family. Disabled ones (names or globs) drop
out, then the backend filter applies (a filter that leaves nothing warns and falls back to all,
unless strict), batch-invariant mode keeps only kernels that declare it, and the rest are ordered
by priority (higher first), then name. Forced kernels go first but pass the same gates. The first
kernel that ``is_supported`` here and ``can_implement`` the config wins; every other kernel gets a
line saying why not. The vLLM-named functions below are thin wrappers over it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import threading
import warnings
from dataclasses import dataclass, field

import torch

from .config import (
    FP8ScaledMMLinearLayerConfig,
    Int8ScaledMMLinearLayerConfig,
    LayerConfig,
    MPLinearLayerConfig,
    MxFp4LinearLayerConfig,
    Mxfp8LinearLayerConfig,
    NvFp4LinearLayerConfig,
)
from .kernel import LinearKernel
from .platform import Platform, resolve_platform
from .settings import Settings, get_settings


class NoKernelError(RuntimeError):
    """No registered kernel can implement the layer here; the message lists every kernel's reason."""

    def __init__(self, selection: "Selection") -> None:
        self.selection = selection
        super().__init__(selection.explain())


@dataclass
class Selection:
    config: LayerConfig
    platform: Platform
    kernel: type[LinearKernel] | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # full kernel name -> why not (or "available")
    notes: dict[str, str] = field(default_factory=dict)  # full kernel name -> a usable kernel's caveat (slow, JIT...)
    order: list[type[LinearKernel]] = field(default_factory=list)  # kernels in the order tried
    viable: list[type[LinearKernel]] = field(default_factory=list)  # all that passed (with evaluate_all)
    warnings: list[str] = field(default_factory=list)
    table: "Decision | None" = None  # the measured-table decision, when one applied
    plan: list[tuple[int, type[LinearKernel]]] = field(default_factory=list)  # (upper M, kernel): per-M dispatch

    @property
    def rejected(self) -> list[tuple[str, str]]:
        return [(n, r) for n, r in self.reasons.items() if self.kernel is None or n != self.kernel.full_name()]

    def explain(self) -> str:
        lines = [f"{self.config.describe()} on {self.platform.describe()}:"]
        lines += [f"  warning: {w}" for w in self.warnings]
        if not self.reasons and not self.order:
            lines.append(f"  no {self.config.family} kernel is registered (is a provider installed? try `qlinear doctor`)")
        for k in self.order:
            n = k.full_name()
            mark = "selected" if k is self.kernel else self.reasons.get(n, "")
            if n in self.notes and (k is self.kernel or mark.startswith("available")):
                mark += f" ({self.notes[n]})"
            lines.append(f"  {n:<55} prio {k.priority:>4}  {mark}")
        for n, r in self.reasons.items():
            if not any(k.full_name() == n for k in self.order):
                lines.append(f"  {n:<55} {'':>9}  {r}")
        if self.table is not None:
            lines += ["  " + ln for ln in self.table.explain_lines()]
        return "\n".join(lines)


def _matches(cls: type[LinearKernel], patterns) -> str | None:
    for p in patterns:
        if fnmatch.fnmatchcase(cls.__name__, p) or fnmatch.fnmatchcase(cls.full_name(), p):
            return p
    return None


_warned_lock = threading.Lock()
_warned: set[tuple[str, str]] = set()


def _warn_unknown_names(st: Settings, registered: list[type[LinearKernel]]) -> None:
    """Names in QLINEAR_FORCE_KERNEL / QLINEAR_DISABLED_KERNELS that match no registered kernel (of
    any family) are most likely typos: say so, once per name, instead of ignoring them."""
    for var, names in (("QLINEAR_FORCE_KERNEL", st.force_kernels), ("QLINEAR_DISABLED_KERNELS", st.disabled_kernels)):
        unknown = [p for p in names if not any(_matches(k, (p,)) for k in registered)]
        with _warned_lock:
            unknown = [p for p in unknown if (var, p) not in _warned]
            _warned.update((var, p) for p in unknown)
        if unknown:
            warnings.warn(f"{var}: {', '.join(map(repr, unknown))} match no registered kernel "
                          "(`qlinear doctor` lists them); ignored", stacklevel=3)


def platform_for_device(plat: Platform, device: torch.device | str | None) -> Platform:
    """The platform a layer whose weights live on ``device`` runs on: a CPU layer runs on the CPU
    even when the machine (or a simulated one) has a GPU, so only CPU kernels are candidates."""
    if device is None:
        return plat
    dev = torch.device(device)
    if dev.type == plat.device_type or dev.type not in ("cpu", "cuda", "xpu"):  # e.g. meta: not placed yet
        return plat
    from .platform import current_platform, detect_platform

    if dev.type == "cpu":
        # the layer's tensors run on this machine's CPU: its real flags, not a simulated machine's
        # (a simulated sm90 lists an AMX Xeon; built on an AMD host, the AMX kernel failed at load)
        cpu = detect_platform() if plat.simulated else plat
        return dataclasses.replace(cpu, kind="cpu", capability=None, device_name="")

    real = detect_platform() if current_platform().simulated else current_platform()
    return real if dev.type == real.device_type else plat


def select(
    config: LayerConfig,
    platform: Platform | int | None = None,
    settings: Settings | None = None,
    kernels: list[type[LinearKernel]] | None = None,
    force: list[type[LinearKernel] | str] | None = None,
    raise_on_failure: bool = True,
    evaluate_all: bool = False,
    regime: str | None = None,
    device: torch.device | str | None = None,
) -> Selection:
    """Pick the kernel for ``config``. ``kernels`` limits the candidates (default: the registry's);
    ``force`` (classes or names) adds to ``settings.force_kernels``; ``evaluate_all`` also gates
    the kernels after the winner (for ``doctor``/autotune). Where a measured table applies
    (``qlinear.tables``) the usable kernel fastest over ``regime``'s M range (``decode``,
    ``prefill``, ``mixed``; default ``settings.regime``) wins instead of the highest priority, and
    ``Selection.plan`` holds the per-M dispatch among kernels sharing its weight layout.
    ``device`` (where the weights live) narrows the platform to that device's kind (a CPU layer
    gets CPU kernels on a GPU machine)."""
    from . import tables
    from .registry import get_registry

    plat = platform_for_device(resolve_platform(platform), device)
    st = settings or get_settings()
    fam = config.family
    if kernels is None:
        reg = get_registry()
        if st.force_kernels or st.disabled_kernels:
            _warn_unknown_names(st, reg.kernels())
        cands = reg.kernels(fam, plat.kind)
    else:
        cands = list(kernels)
    cands = [k for k in cands if k.family == fam]
    sel = Selection(config, plat)

    def reject(k, why):
        sel.reasons[k.full_name()] = why

    # 1. disabled kernels
    live = []
    for k in cands:
        p = _matches(k, st.disabled_kernels)
        reject(k, f"disabled (QLINEAR_DISABLED_KERNELS matches {p!r})") if p else live.append(k)
    # 2. backend filter, falling back with a warning when it leaves nothing
    backend = st.backend_for(fam)
    if backend != "auto":
        keep = [k for k in live if backend in (k.backend, k.provider)]
        if keep:
            for k in live:
                if k not in keep:
                    reject(k, f"backend is {k.backend!r}, linear_backend asks for {backend!r}")
            live = keep
        elif st.strict_backend:
            for k in live:
                reject(k, f"backend is {k.backend!r}, linear_backend asks for {backend!r} (strict)")
            live = []
            sel.warnings.append(f"linear_backend {backend!r} matches no {fam} kernel (QLINEAR_STRICT_BACKEND=1)")
        else:
            msg = f"linear_backend {backend!r} matches no {fam} kernel; falling back to automatic selection"
            sel.warnings.append(msg)
            warnings.warn(msg, stacklevel=2)
    # 3. batch-invariant mode
    if st.batch_invariant:
        for k in live:
            if not k.batch_invariant:
                reject(k, "not batch-invariant (QLINEAR_BATCH_INVARIANT=1)")
        live = [k for k in live if k.batch_invariant]
    # 4. order: forced first, then priority, then name
    forced_names = list(st.force_kernels) + [f if isinstance(f, str) else f.__name__ for f in (force or ())]
    live.sort(key=lambda k: (_matches(k, forced_names) is None, -k.priority, k.__name__))
    sel.order = live
    regime = tables.check_regime(regime or st.regime)
    use_table = st.use_tables and not (live and _matches(live[0], forced_names)) and tables.has_rows(config, plat)
    evaluate_all = evaluate_all or use_table  # the table compares every usable kernel
    # 5. gates
    for k in live:
        if sel.kernel is not None and not evaluate_all:
            reject(k, f"not tried ({sel.kernel.__name__} chosen first)")
            continue
        why, note = _gate(k, config, plat)
        if note:
            sel.notes[k.full_name()] = note
        if why is None:
            if sel.kernel is None:
                sel.kernel = k
            else:
                reject(k, "available (lower priority)")
            sel.viable.append(k)
        else:
            if _matches(k, forced_names):
                why = f"forced, but {why}"
            reject(k, why)
    if use_table and sel.kernel is not None and not _matches(sel.kernel, forced_names):
        _apply_table(sel, tables.decide(config, sel.viable, plat, regime, per_m=not st.batch_invariant))
    if sel.kernel is None and raise_on_failure:
        raise NoKernelError(sel)
    return sel


def _apply_table(sel: Selection, d) -> None:
    """Make the table's choice the selection, and say so in every usable kernel's reason."""
    if d is None:
        return
    by_name = {k.full_name(): k for k in sel.viable}
    old, new = sel.kernel, by_name[d.kernel]
    sel.table = d
    sel.kernel = new
    sel.reasons.pop(new.full_name(), None)
    for k in sel.viable:
        if k is not new:
            n = k.full_name()
            sel.reasons[n] = ("available (slower over the regime's M in the table)" if n in d.sums
                              else "available (its table rows were timed with an older version of the kernel: "
                                   "ignored until `qlinear tune` re-times it)" if n in d.stale
                              else "available (no table row for every M of the regime)")
    if old is not new:
        sel.reasons[old.full_name()] += "; the priority pick"
    sel.plan = [(hi, by_name[name]) for hi, name in d.plan]


def _gate(k: type[LinearKernel], config: LayerConfig, plat: Platform) -> tuple[str | None, str | None]:
    """(None, note) if ``k`` can run ``config`` here, else (why not, None). A kernel that raises is
    rejected, not fatal. A gate that says yes *with* a reason ("available but slow") gives the note,
    as does a kernel class's ``notes`` attribute ("JIT-compiles on first use")."""
    notes = [getattr(k, "notes", None)]
    for step, call in (("is_supported", lambda: k.is_supported(plat)), ("can_implement", lambda: k.can_implement(config))):
        try:
            res = call()
        except Exception as e:  # noqa: BLE001
            return f"{step} raised {type(e).__name__}: {e}", None
        ok, why = res if isinstance(res, tuple) else (bool(res), None)
        if not ok:
            return why or f"{step} said no", None
        notes.append(why)
    return None, "; ".join(n for n in notes if n) or None


# ============================================================================================
# vLLM-named wrappers
# ============================================================================================
def _kernel_class(config, compute_capability=None, possible_kernels=None, force_kernel=None) -> type[LinearKernel]:
    return select(config, compute_capability, kernels=possible_kernels,
                  force=[force_kernel] if force_kernel else None).kernel  # type: ignore[return-value]


def choose_mp_linear_kernel(config: MPLinearLayerConfig, compute_capability: int | None = None) -> type[LinearKernel]:
    return _kernel_class(config, compute_capability)


def choose_scaled_mm_linear_kernel(config, possible_kernels=None, compute_capability: int | None = None) -> type[LinearKernel]:
    if isinstance(possible_kernels, dict):  # vLLM passes {platform: [kernels]}
        possible_kernels = [k for ks in possible_kernels.values() for k in ks]
    return _kernel_class(config, compute_capability, possible_kernels)


def init_fp8_linear_kernel(activation_quant_key, weight_quant_key, out_dtype=None, force_kernel=None, module_name=None,
                           *, weight_shape=None, input_dtype=torch.bfloat16) -> LinearKernel:
    if weight_shape is None:
        raise ValueError("weight_shape: (N, K) is required to choose an FP8 kernel")
    c = FP8ScaledMMLinearLayerConfig(weight_quant_key, activation_quant_key, tuple(weight_shape), input_dtype, out_dtype)
    return _kernel_class(c, force_kernel=force_kernel).create(c)


def init_int8_linear_kernel(is_channelwise: bool, is_static_input_scheme: bool, input_symmetric: bool,
                            module_name=None, *, weight_shape=None, input_dtype=torch.bfloat16, out_dtype=None,
                            force_kernel=None) -> LinearKernel:
    c = Int8ScaledMMLinearLayerConfig(is_static_input_scheme, is_channelwise, input_symmetric,
                                      tuple(weight_shape) if weight_shape else None, input_dtype, out_dtype)
    return _kernel_class(c, force_kernel=force_kernel).create(c)


def _init_micro(cls, weight_shape, act_dtype, out_dtype, force_kernel) -> LinearKernel:
    if weight_shape is None:
        raise ValueError("weight_shape: (N, K) is required")
    c = cls(tuple(weight_shape), act_dtype, out_dtype)
    return _kernel_class(c, force_kernel=force_kernel).create(c)


def init_nvfp4_linear_kernel(weight_shape=None, act_dtype=torch.bfloat16, out_dtype=None, force_kernel=None) -> LinearKernel:
    return _init_micro(NvFp4LinearLayerConfig, weight_shape, act_dtype, out_dtype, force_kernel)


def init_mxfp4_linear_kernel(weight_shape=None, act_dtype=torch.bfloat16, out_dtype=None, force_kernel=None) -> LinearKernel:
    return _init_micro(MxFp4LinearLayerConfig, weight_shape, act_dtype, out_dtype, force_kernel)


def init_mxfp8_linear_kernel(weight_shape=None, act_dtype=torch.bfloat16, out_dtype=None, force_kernel=None) -> LinearKernel:
    return _init_micro(Mxfp8LinearLayerConfig, weight_shape, act_dtype, out_dtype, force_kernel)
