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
