"""The cpu provider's gates, build cache (lock, corrupt build directories) and determinism."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("qlinear_cpu")

from qlinear import Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig, scalar_types, simulate_platform  # noqa: E402
from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear_cpu import build, caps  # noqa: E402
from qlinear_cpu.kernels import KERNELS  # noqa: E402
from qlinear_cpu.int8 import CpuAmxInt8ScaledMMLinearKernel  # noqa: E402
from qlinear_cpu.mp import CpuAmxWNA16LinearKernel  # noqa: E402

needs_amx = pytest.mark.skipif(not caps.gate()[0], reason=f"{caps.gate()[1]}")


def test_gate_refuses_cpus_without_amx_and_gpus():
    from qlinear.platform import make_platform

    avx2 = make_platform("cpu", cpu_flags=frozenset({"avx2", "fma"}))
    for k in KERNELS:
        ok, why = k.is_supported(avx2)
        assert not ok and "amx_tile" in why
        ok, why = k.is_supported(make_platform("sm90"))
        assert not ok and "platform is cuda" in why
    with simulate_platform("cpu"):
        assert all(k.is_supported()[0] for k in KERNELS)


def test_can_implement_reasons():
    mk = lambda g, wt=scalar_types.uint4b8, zp=False: MPLinearLayerConfig((512, 256), (512, 256), wt, torch.bfloat16, g, zp, False)  # noqa: E731
    assert CpuAmxWNA16LinearKernel.can_implement(mk(128))[0]
    assert CpuAmxWNA16LinearKernel.can_implement(mk(-1))[0]
    ok, why = CpuAmxWNA16LinearKernel.can_implement(mk(16))
    assert not ok and "multiple of 32" in why
    part = MPLinearLayerConfig((1024, 256), (512, 256), scalar_types.uint4b8, torch.bfloat16, 128, False, True)
    ok, why = CpuAmxWNA16LinearKernel.can_implement(part)
    assert not ok and "is_k_full" in why


def test_file_lock_times_out_while_another_holder_builds(tmp_path):
    from qlinear.cuda_jit import build_lock  # the lock build.load_extension builds under

    with build_lock(tmp_path, timeout=5):
        with pytest.raises(TimeoutError, match="another process building"):
            with build_lock(tmp_path, timeout=0.3):
                pass
    with build_lock(tmp_path, timeout=1):  # released: free again
        pass


def test_cache_key_changes_with_source_and_flags(monkeypatch):
    k0 = build.source_key()
    monkeypatch.setattr(build, "CFLAGS", build.CFLAGS + ["-DQLINEAR_TEST_FLAG"])
    assert build.source_key() != k0


@needs_amx
def test_build_survives_a_corrupt_partial_build_dir(tmp_path):
    """A cache directory left by a killed build (garbage module, stale torch lock file) is wiped and
    rebuilt, and the module then works. Runs in a child process with its own cache root."""
    code = textwrap.dedent("""
        import os, pathlib
        from qlinear_cpu import build
        key = build.source_key()
        d = build.cache_root() / key
        d.mkdir(parents=True)
        (d / f"qlinear_cpu_{key}.so").write_bytes(b"not an ELF file")
        (d / "build.ninja").write_text("garbage")
        (d / "lock").write_text("")   # torch's baton left by a killed build
        m = build.load_extension()
        print("OK", callable(m.gemm_dq))
    """)
    env = dict(os.environ, QLINEAR_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OK True" in r.stdout


def _outputs(kernel_cls, c, m, threads):
    g = torch.Generator().manual_seed(3)
    n, k = c.shape_nk
    params = quantize_layer_params(c, torch.randn(n, k, generator=g) * 0.05, calib_x=torch.randn(8, k, generator=g))
    layer = make_layer(c, params)
    kern = kernel_cls.create(c)
    kern.process_weights_after_loading(layer)
    x = torch.randn(m, k, generator=g).bfloat16()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        return kern.apply(layer, x)
    finally:
        torch.set_num_threads(old)


@needs_amx
@pytest.mark.parametrize("m", [1, 3, 8, 33])
@pytest.mark.parametrize("which", ["w4a16-g128", "awq-g64", "int8-dyn-asym", "fp8-block"])
def test_results_identical_across_thread_counts(which, m):
    if which == "int8-dyn-asym":
        kc, c = CpuAmxInt8ScaledMMLinearKernel, Int8ScaledMMLinearLayerConfig(False, True, False, (200, 320), torch.bfloat16)
    elif which == "fp8-block":
        from qlinear.families.schemes import scheme_config
        from qlinear_cpu.fp8 import CpuAmxFp8BlockScaledMMLinearKernel

        kc, c = CpuAmxFp8BlockScaledMMLinearKernel, scheme_config("fp8-block", 512, 200)
    else:
        zp = which.startswith("awq")
        c = MPLinearLayerConfig((512, 200), (512, 200), scalar_types.uint4 if zp else scalar_types.uint4b8,
                                torch.bfloat16, 64 if zp else 128, zp, False)
        kc = CpuAmxWNA16LinearKernel
    a, b = _outputs(kc, c, m, 1), _outputs(kc, c, m, 2)
    assert torch.equal(a, b)


def test_gate_names_a_missing_compiler(monkeypatch):
    from qlinear.platform import make_platform
    import dataclasses

    amx_here = dataclasses.replace(make_platform("cpu"), simulated=False, cpu_flags=frozenset(caps.NEEDED))
    monkeypatch.setenv("CXX", "no-such-compiler-qlinear")
    ok, why = caps.gate(amx_here)
    assert not ok and "no-such-compiler-qlinear" in why
