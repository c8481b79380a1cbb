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
| ``QLINEAR_REGIME`` | the M range layers are chosen for when the caller doesn't say: ``decode``, ``prefill``, ``mixed`` (default) |
| ``QLINEAR_TABLES`` | 0: ignore measured kernel tables (priority order only) |
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass, field

from .config import FAMILIES

_TRUE = {"1", "true", "yes", "on"}


def _flag(v: str | None) -> bool:
    return (v or "").strip().lower() in _TRUE


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
            strict_backend=_flag(env.get("QLINEAR_STRICT_BACKEND")),
            batch_invariant=_flag(env.get("QLINEAR_BATCH_INVARIANT")),
            autotune=_flag(env.get("QLINEAR_AUTOTUNE")),
            zentorch_any_cpu=_flag(env.get("QLINEAR_ZENTORCH_ANY_CPU")),
            regime=(env.get("QLINEAR_REGIME") or "mixed").strip().lower(),
            use_tables=(env.get("QLINEAR_TABLES") or "1").strip().lower() not in ("0", "false", "no", "off"),
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
_current: Settings | None = None


def get_settings() -> Settings:
    global _current
    with _lock:
        if _current is None:
            _current = Settings.from_env()
        return _current


def reload_settings() -> Settings:
    """Read the environment again (after a change to ``os.environ``)."""
    global _current
    with _lock:
        _current = Settings.from_env()
        return _current


@contextlib.contextmanager
def override_settings(**changes):
    """``with override_settings(linear_backend="triton", disabled_kernels=("cutlass.*",)): ...``"""
    global _current
    old = get_settings()
    if isinstance(changes.get("linear_backend"), str):  # accepts the env spelling "auto,mp=marlin"
        changes["linear_backend"], fams = parse_backend(changes["linear_backend"])
        changes.setdefault("family_backends", fams)
    for k in ("disabled_kernels", "force_kernels"):
        if isinstance(changes.get(k), str):
            changes[k] = _words(changes[k])
    new = dataclasses.replace(old, **changes)
    with _lock:
        _current = new
    try:
        yield new
    finally:
        with _lock:
            _current = old
