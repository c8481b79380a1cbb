"""Shared fixtures of the cutlass provider's CPU tests."""

import pytest


@pytest.fixture
def serve_extensions(monkeypatch):
    """``serve_extensions(fake)``: every extension the provider's ``build.load`` is asked for is ``fake``
    (a stand-in written in torch); the names asked for are recorded in ``fake.loaded``."""

    def install(fake):
        from qlinear_cutlass import build

        fake.loaded = []

        def load(name):
            assert name in build.EXTENSIONS, name
            fake.loaded.append(name)
            return fake

        monkeypatch.setattr(build, "load", load)
        return fake

    return install
