"""The JIT build lock (qlinear.cuda_jit): two processes building one key take turns, a lock left by a
dead builder does not block, and an unloadable (truncated) extension is rebuilt once."""

import subprocess
import sys
import time

import pytest

from qlinear import cuda_jit

HOLD = """
import sys, time
from pathlib import Path
from qlinear import cuda_jit
directory, seconds, log = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
with cuda_jit.build_lock(directory):
    with open(log, "a") as f:
        f.write("in\\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write("out\\n")
"""


def _hold(directory, seconds, log):
    return subprocess.Popen([sys.executable, "-c", HOLD, str(directory), str(seconds), str(log)])


def test_two_processes_take_turns(tmp_path):
    log = tmp_path / "log"
    ps = [_hold(tmp_path / "b", 0.5, log) for _ in range(2)]
    for p in ps:
        assert p.wait(120) == 0
    assert log.read_text().split() == ["in", "out", "in", "out"]  # never two inside at once


def test_a_dead_holder_releases(tmp_path):
    p = _hold(tmp_path / "b", 600, tmp_path / "log")
    deadline = time.monotonic() + 60
    while not (tmp_path / "log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "log").exists()
    p.kill()
    p.wait()
    t = time.monotonic()
    with cuda_jit.build_lock(tmp_path / "b"):
        pass
    assert time.monotonic() - t < 5


def test_unloadable_extension_is_rebuilt_once(monkeypatch, tmp_path):
    import torch.utils.cpp_extension as ce

    calls = []

    def fake_load(**kw):
        calls.append(kw["name"])
        if len(calls) == 1:
            raise ImportError("invalid ELF header")
        return "module"

    monkeypatch.setattr(ce, "load", fake_load)
    d = tmp_path / "key"
    d.mkdir()
    (d / "ext.so").write_bytes(b"truncated")
    (d / "lock").write_text("")  # torch's lock file from a dead builder
    assert cuda_jit.load("ext", [], d, include_dirs=[], cflags=[], cuda_cflags=[]) == "module"
    assert len(calls) == 2 and not (d / "ext.so").exists() and not (d / "lock").exists()


def test_compile_errors_propagate(monkeypatch, tmp_path):
    import torch.utils.cpp_extension as ce

    def fail(**kw):
        raise RuntimeError("Error building extension 'ext'")

    monkeypatch.setattr(ce, "load", fail)
    with pytest.raises(RuntimeError, match="Error building extension"):
        cuda_jit.load("ext", [], tmp_path / "k", include_dirs=[], cflags=[], cuda_cflags=[])


def test_compile_errors_are_remembered_until_rebuild(monkeypatch, tmp_path):
    """A failed build leaves FAILED beside build.log: the next load reports it without compiling,
    QLINEAR_<PROVIDER>_REBUILD=1 compiles again (and a success clears the record)."""
    import torch.utils.cpp_extension as ce

    calls = []

    def fail_then_build(**kw):
        calls.append(kw["name"])
        if len(calls) == 1:
            raise RuntimeError("Error building extension 'ext': nvcc: error")
        return "module"

    monkeypatch.setattr(ce, "load", fail_then_build)
    monkeypatch.delenv("QLINEAR_DEMO_REBUILD", raising=False)
    d = tmp_path / "k"
    for _ in range(2):
        with pytest.raises(cuda_jit.BuildError, match="failed to build") as e:
            cuda_jit.load("ext", [], d, provider="demo")
    assert len(calls) == 1 and "nvcc: error" in e.value.log.read_text() and (d / "FAILED").exists()
    assert "QLINEAR_DEMO_REBUILD" in str(e.value)
    monkeypatch.setenv("QLINEAR_DEMO_REBUILD", "1")
    assert cuda_jit.load("ext", [], d, provider="demo") == "module"
    assert len(calls) == 2 and not (d / "FAILED").exists()


def test_cache_root_honours_qlinear_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("QLINEAR_DEMO_CACHE", raising=False)
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    assert cuda_jit.cache_root("demo") == tmp_path / "demo"
    monkeypatch.setenv("QLINEAR_DEMO_CACHE", str(tmp_path / "own"))
    assert cuda_jit.cache_root("demo") == tmp_path / "own"
