"""The per-call op look-up takes no lock once the library imported (thin call path; torch.compile
cannot trace into a lock)."""

import pytest

library = pytest.importorskip("qlinear_fbgemm.library")


class _NoLock:
    def __enter__(self):
        raise AssertionError("lock taken on the call path")

    def __exit__(self, *a):
        return False


def test_op_after_a_good_import_takes_no_lock(monkeypatch):
    monkeypatch.setattr(library, "_status", (True, None))
    monkeypatch.setattr(library, "_lock", _NoLock())
    import torch

    monkeypatch.setattr(torch.ops, "fbgemm", type("NS", (), {"f8f8bf16": "the op"})())
    assert library.op("f8f8bf16") == "the op"


def test_op_before_the_import_still_reports_why(monkeypatch):
    monkeypatch.setattr(library, "_status", (False, "fbgemm-gpu-genai not importable: test"))
    with pytest.raises(RuntimeError, match="not importable"):
        library.op("f8f8bf16")
