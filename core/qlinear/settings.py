"""One settings object for every selection knob, read once from ``QLINEAR_*`` variables.

| variable | meaning |
|---|---|
| ``QLINEAR_LINEAR_BACKEND`` | ``auto`` or a backend word (``triton``, ``marlin``...); per family: ``auto,mp=marlin,fp8=torch`` |
| ``QLINEAR_DISABLED_KERNELS`` | comma list of kernel names or globs (``TritonW4A16LinearKernel``, ``cutlass.*``) |
| ``QLINEAR_FORCE_KERNEL`` | comma list of kernel names; a forced kernel is tried first, gated like any other |
| ``QLINEAR_STRICT_BACKEND`` | 1: a backend filter that leaves nothing is an error instead of a warning |
| ``QLINEAR_BATCH_INVARIANT`` | 1: only kernels whose rows don't depend on the batch |
| ``QLINEAR_AUTOTUNE`` | 1: time the usable kernels on real shapes and keep the fastest per M bucket |
| ``QLINEAR_ZENTORCH_ANY_CPU`` | 1: let the zentorch provider run on non-Zen x86 CPUs |
| ``QLINEAR_CPU_W4A8`` | 1: let the cpu provider run W4A16 layers as W4A8 (int8-quantized activations: other results) |
| ``QLINEAR_REGIME`` | the M range layers are chosen for when the caller doesn't say: ``decode``, ``prefill``, ``mixed`` (default) |
| ``QLINEAR_TABLES`` | 0: ignore measured kernel tables (priority order only) |

A switch takes ``1/true/yes/on`` or ``0/false/no/off`` (or empty); anything else is an error that
names the variable (``QLINEAR_AUTOTUNE=2`` used to mean "off", silently).

The environment is read once per process. ``override_settings`` is context-local (a
``contextvars.ContextVar``): it applies to the code inside its ``with`` block on the thread (or
asyncio task) that entered it, never to other threads, and nested or interleaved overrides in
different threads cannot leave each other's values behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import threading
import warnings
from dataclasses import dataclass, field

from .config import FAMILIES

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(v: str | None, name: str = "value") -> bool:
    w = (v or "").strip().lower()
    if w in _TRUE:
        return True
    if w in _FALSE:
        return False
    raise ValueError(f"{name}: {v!r} is not a switch; use 1/true/yes/on or 0/false/no/off")


def env_flag(name: str) -> bool:
    """A switch from the environment (1/true/yes/on, 0/false/no/off or unset); else an error naming it."""
    return _flag(os.environ.get(name), name)


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    """An integer knob from the environment. A value that is not an integer (or is below ``minimum``)
    warns, naming the variable, and gives ``default``: a tuning threshold must not take a whole
    provider down (it used to: ``int()`` raised at the provider's import and it was skipped)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        need = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        warnings.warn(f"{name}={raw!r} is not {need}; using the default {default}", RuntimeWarning, stacklevel=2)
        return default
    return value


def _words(v: str | None) -> tuple[str, ...]:
    return tuple(w.strip() for w in (v or "").split(",") if w.strip())


@dataclass(frozen=True)
class Settings:
    linear_backend: str = "auto"
    family_backends: dict[str, str] = field(default_factory=dict)  # family -> backend word
    disabled_kernels: tuple[str, ...] = ()
    force_kernels: tuple[str, ...] = ()
    strict_backend: bool = False
    batch_invariant: bool = False
    autotune: bool = False
    zentorch_any_cpu: bool = False
    cpu_w4a8: bool = False
    regime: str = "mixed"
    use_tables: bool = True

    def backend_for(self, family: str) -> str:
        return self.family_backends.get(family, self.linear_backend)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        backend, per_family = parse_backend(env.get("QLINEAR_LINEAR_BACKEND", "auto"))
        return cls(
            linear_backend=backend,
            family_backends=per_family,
            disabled_kernels=_words(env.get("QLINEAR_DISABLED_KERNELS")),
            force_kernels=_words(env.get("QLINEAR_FORCE_KERNEL")),
            strict_backend=_flag(env.get("QLINEAR_STRICT_BACKEND"), "QLINEAR_STRICT_BACKEND"),
            batch_invariant=_flag(env.get("QLINEAR_BATCH_INVARIANT"), "QLINEAR_BATCH_INVARIANT"),
            autotune=_flag(env.get("QLINEAR_AUTOTUNE"), "QLINEAR_AUTOTUNE"),
            zentorch_any_cpu=_flag(env.get("QLINEAR_ZENTORCH_ANY_CPU"), "QLINEAR_ZENTORCH_ANY_CPU"),
            cpu_w4a8=_flag(env.get("QLINEAR_CPU_W4A8"), "QLINEAR_CPU_W4A8"),
            regime=(env.get("QLINEAR_REGIME") or "mixed").strip().lower(),
            use_tables=not env.get("QLINEAR_TABLES", "").strip() or _flag(env.get("QLINEAR_TABLES"), "QLINEAR_TABLES"),
        )


def parse_backend(text: str) -> tuple[str, dict[str, str]]:
    """``"auto,mp=marlin,fp8=torch"`` -> ("auto", {"mp": "marlin", "fp8": "torch"})."""
    default, per_family = "auto", {}
    for w in _words(text) or ("auto",):
        if "=" in w:
            fam, _, b = w.partition("=")
            fam = fam.strip()
            if fam not in FAMILIES:
                raise ValueError(f"QLINEAR_LINEAR_BACKEND: unknown family {fam!r} in {text!r}; families: {FAMILIES}")
            per_family[fam] = b.strip()
        else:
            default = w
    return default, per_family


_lock = threading.Lock()
_base: Settings | None = None  # from the environment, shared by every thread
_override: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("qlinear_settings_override", default=None)


def get_settings() -> Settings:
    """The settings in force here: the innermost ``override_settings`` of this context, else the
    environment's (read once)."""
    ov = _override.get()
    if ov is not None:
        return ov
    base = _base
    if base is None:
        with _lock:
            if _base is None:
                _set_base(Settings.from_env())
            base = _base
    return base  # type: ignore[return-value]


def _set_base(st: Settings) -> None:
    global _base
    _base = st


def reload_settings() -> Settings:
    """Read the environment again (after a change to ``os.environ``); an override active in this
    context still wins until its block ends."""
    st = Settings.from_env()
    with _lock:
        _set_base(st)
    return get_settings()


@contextlib.contextmanager
def override_settings(**changes):
    """``with override_settings(linear_backend="triton", disabled_kernels=("cutlass.*",)): ...``

    Context-local: other threads (and asyncio tasks started outside the block) keep their settings."""
    old = get_settings()
    if isinstance(changes.get("linear_backend"), str):  # accepts the env spelling "auto,mp=marlin"
        changes["linear_backend"], fams = parse_backend(changes["linear_backend"])
        changes.setdefault("family_backends", fams)
    for k in ("disabled_kernels", "force_kernels"):
        if isinstance(changes.get(k), str):
            changes[k] = _words(changes[k])
    new = dataclasses.replace(old, **changes)
    token = _override.set(new)
    try:
        yield new
    finally:
        _override.reset(token)
