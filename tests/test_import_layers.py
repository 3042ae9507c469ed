"""The package's folders import each other in one direction only: each top-level folder or module of
`src/hf_encdec` sits on a layer, and every import, at module level or inside a function, reaches the same layer or
a lower one. A cycle between folders (or a function that imports upward to dodge one) fails here, naming the
file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hf_encdec"

#: lowest first: models/ is the Hub payload (torch and transformers only); the speed paths patch it; gettext and
#: text tools; corpora; metrics; the registration table and the pipeline; model cards; translating with a trained
#: model; training (which translates its test set); the Hub; the command line and the package's front door
LAYERS: list[set[str]] = [
    {"models"},
    {"speed"},
    {"localization"},
    {"data"},
    {"evaluation", "metrics"},
    {"registration", "pipelines"},
    {"model_card"},
    {"inference"},
    {"training"},
    {"hub"},
    {"cli", "__init__", "__main__"},
]
LAYER = {group: index for index, groups in enumerate(LAYERS) for group in groups}


def _group(parts: list[str]) -> str:
    return parts[0] if parts else "__init__"


def imports() -> list[tuple[str, int, str, str, bool]]:
    """(file, line, importing group, imported group, inside a function) for every import between groups."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        package = parts[:-1]
        me = _group(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            targets: list[list[str]] = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    targets = [base + node.module.split(".")]
                else:
                    targets = [base + [alias.name] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_encdec."):
                targets = [node.module.split(".")[1:]]
            elif isinstance(node, ast.Import):
                targets = [alias.name.split(".")[1:] for alias in node.names if alias.name.startswith("hf_encdec.")]
            for target in targets:
                group = _group(target)
                if group != me:
                    found.append((str(path.relative_to(PACKAGE)), node.lineno, me, group, id(node) in in_function))
    return found


def test_every_top_level_folder_and_module_has_a_layer() -> None:
    groups = {_group(list(p.relative_to(PACKAGE).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    groups = {"__init__" if g == "__init__" else g for g in groups}
    assert groups <= set(LAYER), f"put these in LAYERS: {sorted(groups - set(LAYER))}"


def test_imports_reach_the_same_layer_or_a_lower_one() -> None:
    found = imports()
    assert len(found) > 20  # the walk sees the package's imports
    upward = [f"{file}:{line}: {me} imports {group}{' inside a function' if nested else ''}"
              for file, line, me, group, nested in found if LAYER[group] > LAYER[me]]
    assert not upward, "imports that reach a higher layer:\n" + "\n".join(upward)


def test_groups_on_one_layer_do_not_import_each_other_both_ways() -> None:
    edges = {(me, group) for _, _, me, group, _ in imports()}
    both = sorted({tuple(sorted(edge)) for edge in edges if edge[::-1] in edges})
    assert not both, f"cycles between folders: {both}"


@pytest.mark.parametrize("module", ["models"])
def test_the_hub_payload_imports_nothing_else_of_the_package(module: str) -> None:
    outside = [f"{file}:{line} imports {group}" for file, line, me, group, _ in imports() if me == module]
    assert not outside, outside
