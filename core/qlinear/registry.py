"""Provider discovery: a pluggy PluginManager over the ``qlinear`` entry-point group.

A provider is a plain module named by an entry point (``[project.entry-points.qlinear]
triton = "qlinear_triton"``) that implements the hook ``qlinear_kernels()`` and returns its kernel
classes. Kernel modules import only torch at import time; heavy libraries are imported by the
kernels' ``is_supported`` or at first use. A provider that fails to import, or whose hook raises or
returns garbage, is recorded with its error (``qlinear doctor`` shows it) and skipped.
"""

from __future__ import annotations

import importlib.metadata as md
import threading
import traceback
from dataclasses import dataclass, field

import pluggy

from .config import FAMILIES
from .kernel import LinearKernel

GROUP = "qlinear"
hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class QlinearHookSpec:
    @hookspec
    def qlinear_kernels(self) -> list[type[LinearKernel]]:  # type: ignore[empty-body]
        """Return this provider's kernel classes (import no heavy library here)."""


@dataclass
class ProviderInfo:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    kernels: list[type[LinearKernel]] = field(default_factory=list)
    error: str | None = None  # set when the provider was skipped
    traceback: str | None = None  # the full traceback behind ``error`` (doctor -v)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Registered:
    cls: type[LinearKernel]
    platform_kind: str | None  # only a candidate on this platform kind (register_linear_kernel)


class Registry:
    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(QlinearHookSpec)
        self.providers: dict[str, ProviderInfo] = {}
        self._kernels: list[_Registered] = []
        if load_entry_points:
            self.load_entry_points()

    # ---- discovery -------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in self.providers:
                continue
            dist = getattr(ep, "dist", None)
            info = ProviderInfo(ep.name, ep.value, dist.name if dist else None, dist.version if dist else None)
            self.providers[ep.name] = info
            try:
                module = ep.load()
                self.add_provider(module, ep.name, info)
            except Exception as e:  # noqa: BLE001 - a broken plugin must never be fatal
                info.error = f"{type(e).__name__}: {e}"
                info.traceback = traceback.format_exc()

    def add_provider(self, module, name: str, info: ProviderInfo | None = None) -> ProviderInfo:
        """Register a provider module (or object) implementing ``qlinear_kernels``."""
        info = info or self.providers.setdefault(name, ProviderInfo(name, getattr(module, "__name__", repr(module))))
        self.pm.register(module, name=name)
        impls = [i for i in self.pm.hook.qlinear_kernels.get_hookimpls() if i.plugin_name == name]
        if not impls:
            raise TypeError(f"provider {name!r} ({info.module}) implements no qlinear_kernels() hook")
        kernels: list[type[LinearKernel]] = []
        for impl in impls:
            got = impl.function()
            for k in got or ():
                _validate_kernel_class(k, name)
                if k.provider == LinearKernel.provider:
                    k.provider = name
                kernels.append(k)
        info.kernels = kernels
        # a class the provider already registered itself (register_linear_kernel at import, maybe
        # limited to a platform kind) keeps that registration
        known = {r.cls for r in self._kernels}
        self._kernels.extend(_Registered(k, None) for k in kernels if k not in known)
        return info

    def register(self, cls: type[LinearKernel], platform_kind: str | None = None, family: str | None = None,
                 priority: int | None = None) -> type[LinearKernel]:
        if family is not None:
            if family not in FAMILIES:
                raise ValueError(f"kernel_type: {family!r} is not one of {FAMILIES}")
            if cls.family and cls.family != family:
                raise ValueError(f"kernel_type: {cls.__name__} is a {cls.family!r} kernel, not {family!r}")
            cls.family = family
        if priority is not None:
            cls.priority = priority
        _validate_kernel_class(cls, cls.provider)
        self._kernels = [r for r in self._kernels if r.cls is not cls]
        self._kernels.append(_Registered(cls, platform_kind))
        return cls

    # ---- queries ----------------------------------------------------------------------------
    def kernels(self, family: str | None = None, platform_kind: str | None = None) -> list[type[LinearKernel]]:
        return [
            r.cls for r in self._kernels
            if (family is None or r.cls.family == family)
            and (r.platform_kind is None or platform_kind is None or r.platform_kind == platform_kind)
        ]


def _validate_kernel_class(k, provider: str) -> None:
    if not (isinstance(k, type) and issubclass(k, LinearKernel)):
        raise TypeError(f"provider {provider!r} returned {k!r}, which is not a LinearKernel subclass")
    if k.family not in FAMILIES:
        raise TypeError(f"{k.__name__}.family = {k.family!r} is not one of {FAMILIES}")
    if getattr(k, "__abstractmethods__", None):
        raise TypeError(f"{k.__name__} leaves abstract methods unimplemented: {sorted(k.__abstractmethods__)}")


# Re-entrant: discovery imports providers, and a provider may call ``register_linear_kernel``
# (hence ``get_registry``) from its import, on the same thread, while discovery holds the lock.
_lock = threading.RLock()
_registry: Registry | None = None
_ready = False  # discovery finished: other threads may use ``_registry`` without the lock


def get_registry() -> Registry:
    global _registry, _ready
    reg = _registry  # read before the flag: a reset in between still leaves a whole registry
    if _ready and reg is not None:
        return reg
    with _lock:
        if _registry is None:
            # published before discovery, so a provider registering at import (same thread, the lock
            # is re-entrant) adds to this registry instead of starting a second discovery
            _registry = Registry(load_entry_points=False)
            try:
                _registry.load_entry_points()
            except BaseException:
                _registry = None
                raise
            _ready = True
        return _registry


def reset_registry() -> None:
    """Forget discovered providers (tests; after installing a provider in-process)."""
    global _registry, _ready
    with _lock:
        _ready = False
        _registry = None


def register_linear_kernel(kernel_class: type[LinearKernel], platform=None, kernel_type: str | None = None,
                           priority: int | None = None) -> type[LinearKernel]:
    """vLLM's in-process registration. ``platform`` (a kind word, a Platform, or None = any) limits
    where it is a candidate; ``kernel_type`` is the family ("mp", "int8", "fp8", "fp8_block",
    "nvfp4", "mxfp4", "mxfp8"). Unlike the reference, ``priority`` decides its place, so a plugin
    can outrank built-ins."""
    kind = getattr(platform, "kind", platform)
    return get_registry().register(kernel_class, kind, kernel_type, priority)
