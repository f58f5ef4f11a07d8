import sys

import pytest
import torch

from gankit import malloc

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc / procfs only")


@linux
def test_keep_freed_memory_applies_and_is_recorded():
    assert malloc.keep_freed_memory()
    assert malloc.malloc_mode() == "keep-freed"


def test_opt_out(monkeypatch):
    monkeypatch.setenv("GANKIT_MALLOC", "system")
    assert not malloc.keep_freed_memory()


@linux
def test_peak_rss_sees_a_large_allocation():
    base = malloc.reset_peak_rss()
    x = torch.ones(64, 1024, 1024)  # 256 MiB, touched
    peak = malloc.peak_rss()
    del x
    assert peak - base > 200
