"""Build step: transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) for the installed release.

The files come from the source distribution of the installed transformers version on the package index (the same
place `pip install` reads; never the Hub) and are cached in `.cache/transformers-tests/<version>/`, which
`tests/hf/test_transformers_common.py` imports. The source distribution ships `tests/test_modeling_common.py` and
`tests/test_configuration_common.py` but not three modules they import relatively (the export and generation test
mixins, the common config kwargs); this library's stand-ins for them (`tests/hf/upstream/`) complete the package.

    python scripts/fetch_transformers_tests.py      # run by scripts/setup.sh; does nothing when cached
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "transformers-tests"
UPSTREAM_FILES = ("test_modeling_common.py", "test_configuration_common.py")
# stand-in (tests/hf/upstream/NAME) -> where the upstream files import it from, inside the package
STAND_INS = {
    "export_mixin.py": "exporters/test_export.py",
    "generation_mixin.py": "generation/test_utils.py",
    "config_kwargs.py": "utils/test_configuration_utils.py",
}
PACKAGE = "transformers_tests"


def package_dir(version: str = transformers.__version__) -> Path:
    """The folder holding the importable `transformers_tests` package for `version`."""
    return CACHE / version


def fetch(version: str = transformers.__version__) -> Path:
    target = package_dir(version)
    if (target / "complete").is_file():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"transformers=={version}", "--dest", scratch]
        print(f"[setup] fetching transformers {version}'s common model tests (its source distribution)")
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"could not download the source distribution of transformers {version}: "
                             f"`{' '.join(command)}` failed (the package index must be reachable for set-up)")
        archive = next(Path(scratch).glob("transformers-*.tar.gz"))
        package = target / PACKAGE
        if package.exists():
            shutil.rmtree(package)
        package.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for name in UPSTREAM_FILES:
                member = tar.getmember(f"{archive.name.removesuffix('.tar.gz')}/tests/{name}")
                (package / name).write_bytes(tar.extractfile(member).read())
    for folder in ("", "exporters", "generation", "utils"):
        (package / folder).mkdir(exist_ok=True)
        (package / folder / "__init__.py").touch()
    for stand_in, destination in STAND_INS.items():
        shutil.copyfile(ROOT / "tests" / "hf" / "upstream" / stand_in, package / destination)
    (target / "complete").write_text(version + "\n")
    return target


if __name__ == "__main__":
    fetch()
