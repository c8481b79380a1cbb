"""What this machine is: device kind, compute capability, CPU vendor / Zen generation, versions.

``current_platform()`` is detected once and cached. ``simulate_platform(...)`` overrides it inside
a ``with`` block so tests (and ``qlinear explain --platform sm100``) can ask what another machine
would pick, on a CPU-only box.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import platform as _pyplatform
import threading
from dataclasses import dataclass, field

import torch

KINDS = ("cuda", "rocm", "xpu", "cpu")


@dataclass(frozen=True)
class Platform:
    kind: str  # cuda | rocm | xpu | cpu
    capability: int | None = None  # CUDA/ROCm cc as major*10+minor (gfx942 -> 94)
    device_name: str = ""
    gfx_arch: str = ""  # ROCm only: the AMD GPU target ("gfx942" MI300, "gfx950" MI350/355); ROCm kernels gate on it
    cpu_vendor: str = ""  # AuthenticAMD, GenuineIntel, ...
    cpu_model: str = ""
    zen_generation: int | None = None  # 1..5 on AMD Zen, else None
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    torch_version: str = torch.__version__
    simulated: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Platform.kind: {self.kind!r} is not one of {KINDS}")

    # ---- questions kernels ask -------------------------------------------------------------
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def is_rocm(self) -> bool:
        return self.kind == "rocm"

    def is_xpu(self) -> bool:
        return self.kind == "xpu"

    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    def is_cuda_alike(self) -> bool:
        return self.kind in ("cuda", "rocm")

    def is_zen(self) -> bool:
        return self.zen_generation is not None

    def has_capability(self, cc: int) -> bool:
        return self.capability is not None and self.capability >= cc

    def is_capability(self, cc: int) -> bool:
        return self.capability == cc

    @property
    def device_type(self) -> str:
        """The torch device type tensors live on here."""
        return {"cuda": "cuda", "rocm": "cuda", "xpu": "xpu", "cpu": "cpu"}[self.kind]

    def describe(self) -> str:
        s = self.kind
        if self.capability is not None:
            s += f" cc={self.capability // 10}.{self.capability % 10}"
        if self.device_name:
            s += f" ({self.device_name})"
        cpu = self.cpu_model or self.cpu_vendor
        if cpu:
            s += f"; cpu {cpu}" + (f" (Zen {self.zen_generation})" if self.zen_generation else "")
        s += f"; torch {self.torch_version}"
        return s + (" [simulated]" if self.simulated else "")


# ---- detection -----------------------------------------------------------------------------
def _read_cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return info


def zen_generation(vendor: str, family: int | None, model: int | None) -> int | None:
    """AMD Zen generation from CPUID family/model (family 0x17 = Zen 1-2, 0x19 = Zen 3-4, 0x1A = Zen 5)."""
    if vendor != "AuthenticAMD" or family is None:
        return None
    if family == 0x17:
        return 2 if model is not None and model >= 0x30 else 1
    if family == 0x19:
        # Zen 4: models 0x10-0x1F (Genoa), 0x60-0x7F, 0xA0-0xAF (Bergamo/Siena)
        return 4 if model is not None and (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF) else 3
    if family >= 0x1A:
        return 5 + (family - 0x1A)
    return None


def _detect_cpu() -> dict:
    info = _read_cpuinfo()
    vendor = info.get("vendor_id", "")
    try:
        fam = int(info.get("cpu family", ""))
        model = int(info.get("model", ""))
    except ValueError:
        fam = model = None
    return dict(
        cpu_vendor=vendor,
        cpu_model=info.get("model name", _pyplatform.processor()),
        zen_generation=zen_generation(vendor, fam, model),
        cpu_flags=frozenset(info.get("flags", "").split()),
    )


@functools.lru_cache(maxsize=None)
def cuda_sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (cached): what kernels size one wave of blocks by."""
    return torch.cuda.get_device_properties(device).multi_processor_count


@functools.lru_cache(maxsize=None)
def cuda_has_pdl(device: torch.device) -> bool:
    """Programmatic dependent launch (a kernel starting under its predecessor's tail): compute
    capability 9.0 and later (cached)."""
    return torch.cuda.get_device_capability(device)[0] >= 9


def detect_platform() -> Platform:
    cpu = _detect_cpu()
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if getattr(torch.version, "hip", None):
            arch = getattr(torch.cuda.get_device_properties(0), "gcnArchName", "")
            return Platform("rocm", _rocm_cc(arch, major * 10 + minor), name or arch, gfx_arch=arch.split(":")[0], **cpu)
        return Platform("cuda", major * 10 + minor, name, **cpu)
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return Platform("xpu", None, torch.xpu.get_device_name(), **cpu)
    return Platform("cpu", None, "", **cpu)


def _rocm_cc(arch: str, fallback: int) -> int:
    # gfx942 (MI300) -> 94, gfx950 (MI350) -> 95, gfx90a (MI200) -> 90
    if arch.startswith("gfx9") and len(arch) >= 5:
        try:
            return 90 + int(arch[4], 16) if arch[4] != "0" else 90
        except ValueError:
            pass
    return fallback


_local = threading.local()


@functools.lru_cache(maxsize=1)
def _detected() -> Platform:
    return detect_platform()


def current_platform() -> Platform:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else _detected()


# ---- simulation ------------------------------------------------------------------------------
_ZEN5 = dict(cpu_vendor="AuthenticAMD", cpu_model="AMD EPYC (Zen 5, simulated)", zen_generation=5,
             cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}))
_INTEL = dict(cpu_vendor="GenuineIntel", cpu_model="Intel Xeon (simulated)", zen_generation=None,
              cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"}))

PRESETS: dict[str, dict] = {
    "sm75": dict(kind="cuda", capability=75, device_name="NVIDIA T4", **_INTEL),
    "sm80": dict(kind="cuda", capability=80, device_name="NVIDIA A100", **_INTEL),
    "sm89": dict(kind="cuda", capability=89, device_name="NVIDIA L40S", **_INTEL),
    "sm90": dict(kind="cuda", capability=90, device_name="NVIDIA H100", **_INTEL),
    "sm100": dict(kind="cuda", capability=100, device_name="NVIDIA B200", **_INTEL),
    "sm120": dict(kind="cuda", capability=120, device_name="NVIDIA RTX PRO 6000 Blackwell", **_INTEL),
    "mi300": dict(kind="rocm", capability=94, device_name="AMD Instinct MI300X (gfx942)", gfx_arch="gfx942", **_ZEN5),
    "mi355": dict(kind="rocm", capability=95, device_name="AMD Instinct MI355X (gfx950)", gfx_arch="gfx950", **_ZEN5),
    "xpu": dict(kind="xpu", capability=None, device_name="Intel Data Center GPU Max", **_INTEL),
    "zen5": dict(kind="cpu", **_ZEN5),
    "zen4": dict(kind="cpu", **{**_ZEN5, "zen_generation": 4, "cpu_model": "AMD EPYC (Zen 4, simulated)"}),
    # AVX2 only (EPYC 7003): zentorch's kernels refuse it (qlinear_zentorch.gate)
    "zen3": dict(kind="cpu", **{**_ZEN5, "zen_generation": 3, "cpu_model": "AMD EPYC (Zen 3, simulated)",
                                "cpu_flags": frozenset({"avx2"})}),
    "cpu": dict(kind="cpu", **_INTEL),
}


def make_platform(preset: str | None = None, **overrides) -> Platform:
    """A platform from a preset name (``sm90``, ``mi300``, ``zen5``, ``cpu`` ...) plus overrides."""
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"platform preset {preset!r} is unknown; known: {sorted(PRESETS)}")
        base = dataclasses.replace(Platform("cpu"), **PRESETS[preset])
    else:
        base = current_platform()
    return dataclasses.replace(base, simulated=True, **overrides)


@contextlib.contextmanager
def simulate_platform(preset: str | Platform | None = None, **overrides):
    """``with simulate_platform("sm100"): select(...)`` — what would that machine pick?"""
    p = preset if isinstance(preset, Platform) else make_platform(preset, **overrides)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(p)
    try:
        yield p
    finally:
        stack.pop()


def resolve_platform(p: "Platform | int | None") -> Platform:
    """Accept a Platform, None (current), or a bare compute capability (vLLM's signature)."""
    if p is None:
        return current_platform()
    if isinstance(p, int):
        return dataclasses.replace(current_platform(), capability=p)
    return p
