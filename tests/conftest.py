import importlib.util
import pathlib
import sys

import pytest
import torch


def _load_formats_spec() -> None:
    """The independent decoders of test_formats_spec.py, importable as ``qlinear_tests_formats_spec``
    by the other format tests (loaded by path, so it works whatever pytest's import mode)."""
    name = "qlinear_tests_formats_spec"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("test_formats_spec.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_load_formats_spec()


_PROVIDER_TESTS = pathlib.Path(__file__).with_name("providers")
_MISSING_PROVIDERS: dict[str, str] = {}


def pytest_ignore_collect(collection_path, config):
    """tests/providers/<name>/ is collected only where the provider ``qlinear_<name>`` is installed, so
    the suite runs with any subset of providers; each one left out is named in the summary. (Looked
    up with find_spec, which does not import it: an installed provider that fails to import still
    fails its tests, as it should.)"""
    p = pathlib.Path(collection_path)
    if p.parent != _PROVIDER_TESTS or not p.is_dir():
        return None
    module = f"qlinear_{p.name}"
    if importlib.util.find_spec(module) is None:
        _MISSING_PROVIDERS[p.name] = f"{module} is not installed (pip install -e providers/{p.name})"
        return True
    return None


def pytest_terminal_summary(terminalreporter):
    for name, why in sorted(_MISSING_PROVIDERS.items()):
        terminalreporter.write_line(f"SKIPPED tests/providers/{name}/: {why}")


def pytest_collection_modifyitems(config, items):
    """GPU-marked tests skip cleanly (with a reason) where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fresh_registry():
    """A registry re-read from the installed entry points, forgotten again after the test."""
    from qlinear import registry

    registry.reset_registry()
    yield registry.get_registry()
    registry.reset_registry()
