"""Shared fixtures: deterministic seeds, CPU threads, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# under pytest-xdist (scripts/test.sh runs one worker a core) the cores are shared out among the workers, so
# two workers on two cores do not each start two threads
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def byte_level_copier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved model folder: a tiny copying pointer-generator with the library's byte-level BPE (see tests/copying.py),
    trained once a session for the tests of non-ASCII text and of U+FFFD (the catalog's, the CLI's)."""
    from copying import save_byte_level_copier

    return save_byte_level_copier(tmp_path_factory.mktemp("byte-level-copier"))


def pytest_configure(config: pytest.Config) -> None:
    # marks that transformers' own common tests (tests/hf/test_transformers_common.py) put on some of theirs
    for mark in ("torch_compile_test", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test"):
        config.addinivalue_line("markers", f"{mark}: a mark of transformers' common model tests")
