"""Providers are discovered through the `qlinear` entry-point group; broken ones are reported, never fatal."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qlinear
from qlinear import testing
from qlinear.config import MPLinearLayerConfig
from qlinear.registry import Registry, reset_registry
from qlinear.scalar_type import scalar_types as st

FIXTURE = Path(__file__).parent / "fixtures" / "provider"
C = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)


@pytest.fixture
def fixture_installed(tmp_path, monkeypatch):
    """Install the fixture provider as a distribution on sys.path: its .dist-info (with
    entry_points.txt) is what importlib.metadata, and so pluggy discovery, reads."""
    site = tmp_path / "site"
    shutil.copytree(FIXTURE / "qlinear_fixture", site / "qlinear_fixture")
    info = site / "qlinear_fixture_provider-9.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qlinear-fixture-provider\nVersion: 9.9.0\n")
    (info / "entry_points.txt").write_text(
        "[qlinear]\nfixture = qlinear_fixture\nfixture_broken = qlinear_fixture.broken\n")
    monkeypatch.syspath_prepend(str(site))
    reset_registry()
    yield site
    for m in [m for m in sys.modules if m.startswith("qlinear_fixture")]:
        del sys.modules[m]
    reset_registry()


def test_fixture_provider_is_discovered_and_wins(fixture_installed):
    reg = qlinear.get_registry()
    info = reg.providers["fixture"]
    assert info.ok and info.distribution == "qlinear-fixture-provider" and info.version == "9.9.0"
    assert [k.__name__ for k in info.kernels] == ["FixtureMPLinearKernel"]
    assert info.kernels[0].provider == "fixture"
    sel = qlinear.select(C)
    assert sel.kernel.full_name() == "fixture.FixtureMPLinearKernel"
    # and it really works, judged by the conformance kit
    testing.check_kernel(sel.kernel, cases=testing.cases_for(sel.kernel, ms=(3,)))


def test_broken_provider_is_reported_and_skipped(fixture_installed):
    reg = qlinear.get_registry()
    bad = reg.providers["fixture_broken"]
    assert not bad.ok and "ImportError: libqlinear_fixture_kernels.so" in bad.error
    assert reg.providers["emulation"].ok  # nothing else broke
    assert qlinear.select(C).kernel is not None


def test_lower_priority_plugin_does_not_win(fixture_installed):
    k = qlinear.get_registry().providers["fixture"].kernels[0]
    old = k.priority
    k.priority = -1
    try:
        assert qlinear.select(C).kernel.provider != "fixture"
    finally:
        k.priority = old


def test_hook_returning_garbage_is_an_error_for_that_provider_only():
    class Bad:
        @qlinear.hookimpl
        def qlinear_kernels(self):
            return [int]

    reg = Registry(load_entry_points=False)
    with pytest.raises(TypeError, match="not a LinearKernel subclass"):
        reg.add_provider(Bad(), "bad")


def test_pip_installed_provider_shows_in_doctor(tmp_path):
    """A real `pip install` of the fixture distribution (into a target dir), then `qlinear doctor`
    in a fresh interpreter: discovered, versioned, and the broken one reported."""
    target = tmp_path / "t"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-compile", "--target", str(target), str(FIXTURE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-m", "qlinear.cli", "doctor"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "fixture" in text and "9.9.0" in text
    assert "FixtureMPLinearKernel" in text
    assert "fixture_broken" in text and "libqlinear_fixture_kernels.so" in text
