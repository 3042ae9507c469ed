"""The examples in the library's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import hf_encdec

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(hf_encdec.__path__, prefix="hf_encdec.")
    if not info.name.startswith("hf_encdec.metrics") and info.name != "hf_encdec.__main__"
)


def test_the_library_has_docstring_examples() -> None:
    examples = sum(len(test.examples) for name in MODULES for test in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert examples >= 20


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {module_name}"
