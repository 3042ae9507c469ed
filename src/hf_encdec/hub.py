"""Upload a trained hf_encdec model folder to the Hugging Face Hub.

`push_to_hub` uploads such a folder with `HfApi.create_repo` + `upload_folder`, after the client's own checks: offline
mode (`huggingface_hub.is_offline_mode`), a token (`huggingface_hub.get_token`) and who owns it (`HfApi.whoami`). It
fails fast with a `HubError` subclass that says what is missing and how to fix it: offline mode on, no token (then
nothing touches the network), the endpoint unreachable within `timeout` seconds, a rejected token, or a refused upload.
Model cards are written by `hf_encdec.model_card`.

Before any of that, the files it would upload (`upload_files`) are searched for local paths (`find_local_paths`): an
absolute path in a JSON value, and anywhere the user's home folder, the model folder's own path or a path found so.
A training run writes none (labels and base names), but a run folder of an earlier version holds them (config.json's
`training_data`, eval_results.json's and train_options.json's `data` and `output_dir`). `push_to_hub` refuses such a
folder, naming each file and key, unless `strip_local_paths=True` (`hf-encdec push --strip-local-paths`) rewrites
them in place first (`strip_local_paths`): a path becomes its base name (its path inside the folder, for a file in
it), `training_data` its corpus label, the home folder `~`.
"""

from __future__ import annotations

import importlib
import json
import logging
import mmap
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS as CLIENT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects

logger = logging.getLogger(__name__)

__all__ = [
    "HubConnectionError",
    "HubError",
    "HubOfflineError",
    "HubTokenRejectedError",
    "HubUploadError",
    "LocalPath",
    "LocalPathsError",
    "MissingHubTokenError",
    "find_local_paths",
    "push_to_hub",
    "strip_local_paths",
    "upload_files",
]

DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = ("checkpoints/*", "checkpoint-*/*", "tokenizer/*", ".staging/*", "runs/*", ".git/*", "__pycache__/*")
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
_TOKEN_HELP = (
    "Create a token with write access at https://huggingface.co/settings/tokens and log in with `hf auth login` "
    "(older clients: `huggingface-cli login`) or export HF_TOKEN=<token>"
)


class HubError(RuntimeError):
    """Pushing to the Hub failed; the message says why and what would fix it."""


class HubOfflineError(HubError):
    """Offline mode is on, so nothing may be uploaded."""


class MissingHubTokenError(HubError):
    """No token was passed, HF_TOKEN is unset and there is no saved login."""


class HubTokenRejectedError(HubError):
    """The Hub does not accept the token."""


class HubConnectionError(HubError):
    """The Hub endpoint cannot be reached, or the connection was lost during the upload."""


class HubUploadError(HubError):
    """The Hub refused to create the repository or to take the upload."""


@dataclass(frozen=True)
class LocalPath:
    """A local path in a file that would be uploaded: the file (relative to the folder), where in it (a JSON key
    such as `options.data`, `line 3`, or `byte 120` in a binary file) and the path as found."""

    file: str
    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key} = {self.value!r}"


class LocalPathsError(HubError):
    """Files that would be uploaded hold local paths (absolute paths, the home folder); `found` lists them."""

    def __init__(self, message: str, found: Sequence[LocalPath]) -> None:
        super().__init__(message)
        self.found = list(found)

    def listing(self) -> str:
        """The first findings as `file: key = 'path'`, `; `-separated, and how many more there are."""
        return _listing(self.found)


# Files whose JSON strings are text or tokens of the data rather than settings ("/usr" is a BPE token of software
# messages, a test sentence may be a path): only the paths known to be local are searched for in them.
_DATA_FILES = frozenset({"tokenizer.json", "vocab.json", "merges.txt", "test_translations.jsonl"})
_DATA_KEYS = frozenset({"samples", "source", "reference", "translation", "target"})
_SHOWN = 20  # findings listed in an error message
# what continues a path's last component ("/home/al" is not found inside "/home/alice" or "/home/al.d"; a full stop
# after it ends a sentence), and what comes before a path that is a part of a longer one ("/x/home/al")
_CONTINUED = re.compile(r"[\w-]|\.[\w-]")
_PRECEDED = re.compile(r"[\w./\\-]")


def upload_files(folder: str | Path, ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS) -> list[str]:
    """The files of `folder` that `push_to_hub` uploads, as sorted paths relative to it, filtered as
    `HfApi.upload_folder` filters them (`ignore_patterns` and the client's own: `.git/`, its download cache).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name in ("config.json", "checkpoints/checkpoint-2/trainer_state.json", "tokenizer/tokenizer.json"):
    ...         (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
    ...         _ = (Path(folder) / name).write_text("{}")
    ...     upload_files(folder)
    ['config.json']
    """
    root = Path(folder)
    files = sorted(path.relative_to(root).as_posix() for path in root.glob("**/*") if path.is_file())
    return list(filter_repo_objects(files, ignore_patterns=[*ignore_patterns, *CLIENT_IGNORE_PATTERNS]))


def _distinctive(path: str) -> bool:
    """Whether `path` is long enough to search text for: `/home/alice`, not `/root`, `/tmp` or `/` (a sentence or a
    token of the data may well hold those)."""
    pure = PureWindowsPath(path) if PureWindowsPath(path).drive else PurePosixPath(path)
    return len(pure.parts) > 2


def _home() -> str | None:
    """The user's home folder where it names the user (`/home/alice`, not `/root`), else None."""
    try:
        home = str(Path.home())
    except RuntimeError:  # no HOME and no entry in the password database
        return None
    return home if _distinctive(home) else None


def _is_absolute(value: str) -> bool:
    """Whether a whole JSON string is an absolute path of this or another system (`/x`, `C:\\x`, `\\\\host\\x`)."""
    if len(value) < 2 or "\n" in value:
        return False
    return PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()


def _occurrences(text: str, path: str) -> Iterator[int]:
    """Where `path` occurs in `text` as a whole path or a leading part of one (not inside a longer name)."""
    start = text.find(path)
    while start >= 0:
        end = start + len(path)
        if (start == 0 or not _PRECEDED.match(text[start - 1])) and not _CONTINUED.match(text, end):
            yield start
        start = text.find(path, start + 1)


def _json_strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key path, string) of every string value in a parsed JSON document, outside the data's texts."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name not in _DATA_KEYS:
                yield from _json_strings(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{key}[{index}]")
    elif isinstance(value, str):
        yield key, value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _read_text(path: Path) -> str | None:
    """The text of `path`, or None for a binary file. Of a safetensors file only its header can hold text."""
    if path.suffix == ".safetensors":
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            return handle.read(min(size, 100_000_000)).decode("utf-8", errors="replace")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _known_paths(root: Path, files: Sequence[str]) -> list[str]:
    """The local paths to search every file for: the home folder, the model folder's own path, and every absolute
    path found in a JSON setting (an old card names the data folder that config.json's `training_data` holds)."""
    known = {str(root.absolute()), str(root.resolve())}
    if (home := _home()) is not None:
        known.add(home)
    for name in files:
        if name.endswith(".json") and name not in _DATA_FILES:
            known.update(value for _key, value in _json_strings(_read_json(root / name)) if _is_absolute(value))
    # the longest first: a data folder is found (and rewritten) before the home folder it is in
    return sorted((path for path in known if _distinctive(path)), key=len, reverse=True)


def find_local_paths(folder: str | Path, ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS) -> list[LocalPath]:
    """The local paths in the files `push_to_hub` would upload from `folder`: in JSON files, every string value
    (outside the data's texts) that is an absolute path or holds a known local path; in any other file, every
    occurrence of a known local path (the home folder, the folder's own path, the paths of the JSON files).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (Path(folder) / "config.json").write_text('{"training_data": "/home/alice/heldout", "hidden_size": 8}')
    ...     _ = (Path(folder) / "README.md").write_text("# model\\nTrained on /home/alice/heldout.\\n")
    ...     for found in find_local_paths(folder):
    ...         print(found)
    README.md: line 2 = '/home/alice/heldout'
    config.json: training_data = '/home/alice/heldout'
    """
    root = Path(folder)
    files = upload_files(root, ignore_patterns)
    known = _known_paths(root, files)
    found: list[LocalPath] = []
    for name in files:
        document = _read_json(root / name) if name.endswith(".json") and name not in _DATA_FILES else None
        if document is not None:
            found.extend(
                LocalPath(name, key, value)
                for key, value in _json_strings(document)
                if _is_absolute(value) or any(True for path in known for _ in _occurrences(value, path))
            )
            continue
        text = _read_text(root / name)
        if text is not None:
            for path in known:
                found.extend(
                    LocalPath(name, f"line {text.count(chr(10), 0, at) + 1}", path) for at in _occurrences(text, path)
                )
        else:
            found.extend(LocalPath(name, f"byte {at}", path) for path, at in _binary_occurrences(root / name, known))
    return found


def _binary_occurrences(path: Path, known: Sequence[str]) -> Iterator[tuple[str, int]]:
    """(path, offset) of every known local path in a binary file, searched in a memory map (weights can be larger
    than the memory)."""
    if path.stat().st_size == 0:
        return
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for local in known:
            encoded = local.encode()
            at = data.find(encoded)
            while at >= 0:
                yield local, at
                at = data.find(encoded, at + 1)


def _shareable(value: str, key: str, root: Path, home: str | None) -> str:
    """What a local path becomes in the uploaded folder: `training_data` its corpus label, a file or folder inside
    the model folder its path there (the folder itself its name; a folder that was moved is recognised by what it
    holds, `.../run/checkpoints/checkpoint-3` where `checkpoints/checkpoint-3` is in it), the home folder `~`, any
    other path its base name."""
    if key == "training_data" or key.endswith(".training_data"):
        from .data import corpus_label  # the datasets library, imported only when a folder is stripped

        return corpus_label(value)
    for base in {str(root.absolute()), str(root.resolve())}:
        if value == base:
            return root.name
        if value.startswith(base) and value[len(base)] in "/\\":
            return value[len(base) + 1 :].replace("\\", "/")
    if value == home:
        return "~"
    pure = PureWindowsPath(value) if PureWindowsPath(value).drive else PurePosixPath(value)
    inside = [pure.parts[start:] for start in range(2, len(pure.parts)) if root.joinpath(*pure.parts[start:]).exists()]
    return "/".join(inside[0]) if inside else pure.name or value


def _replace_known(text: str, known: Sequence[str], root: Path, home: str | None) -> str:
    """`text` with each known local path in it made shareable, the longest paths first."""
    for path in known:
        for at in reversed(list(_occurrences(text, path))):
            text = text[:at] + _shareable(path, "", root, home) + text[at + len(path) :]
    return text


def _strip_json(value: Any, known: Sequence[str], root: Path, home: str | None, key: str = "") -> Any:
    if isinstance(value, dict):
        return {
            name: item if name in _DATA_KEYS else _strip_json(item, known, root, home, f"{key}.{name}" if key else name)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [_strip_json(item, known, root, home, f"{key}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, str):
        return _shareable(value, key, root, home) if _is_absolute(value) else _replace_known(value, known, root, home)
    return value


def strip_local_paths(folder: str | Path, ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS) -> list[LocalPath]:
    """Rewrite, in place, the local paths `find_local_paths` finds in the files `push_to_hub` would upload from
    `folder`, as a training run of this version writes them (see `_shareable`). Returns what was rewritten.

    Binary files, the tokenizer's vocabulary and the test translations are never rewritten (that would change the
    weights, the tokens or the data); a local path in them is an error.

    Raises:
        LocalPathsError: a file that is not rewritten holds a local path (delete it or leave it out of the upload).
    """
    root = Path(folder)
    found = find_local_paths(root, ignore_patterns)
    home = _home()
    known = _known_paths(root, upload_files(root, ignore_patterns))
    for name in sorted({item.file for item in found}):
        path = root / name
        document = _read_json(path) if name.endswith(".json") and name not in _DATA_FILES else None
        if document is not None:
            path.write_text(json.dumps(_strip_json(document, known, root, home), indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        elif name not in _DATA_FILES and path.suffix != ".safetensors" and (text := _read_text(path)) is not None:
            path.write_text(_replace_known(text, known, root, home), encoding="utf-8")
    left = find_local_paths(root, ignore_patterns)
    if left:
        raise LocalPathsError(
            f"cannot strip the local paths of binary or data files in {root}: {_listing(left)}. Delete those files or "
            "leave them out of the upload (ignore_patterns), then retry.",
            left,
        )
    for item in found:
        logger.info("stripped a local path: %s", item)
    return found


def _listing(found: Sequence[LocalPath]) -> str:
    shown = "; ".join(str(item) for item in found[:_SHOWN])
    return shown + (f"; and {len(found) - _SHOWN} more" if len(found) > _SHOWN else "")


def _check_local_paths(folder: Path, ignore_patterns: Sequence[str], strip: bool) -> None:
    """Refuse to publish local paths; with `strip`, rewrite them first."""
    if strip:
        stripped = strip_local_paths(folder, ignore_patterns)
        if stripped:
            logger.warning("rewrote %d local path(s) in %s before uploading it", len(stripped), folder)
        return
    found = find_local_paths(folder, ignore_patterns)
    if found:
        raise LocalPathsError(
            f"{folder} holds local paths that would be published with it (a run folder of an earlier version?): "
            f"{_listing(found)}. Pass strip_local_paths=True to rewrite them in place first (a path becomes its "
            "base name, training_data its corpus label), or remove them yourself.",
            found,
        )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "could not talk to the server", whichever HTTP client huggingface_hub uses.

    huggingface_hub 1.x talks through httpx and 2.x through httpx2; both raise subclasses of their `TransportError`
    (connect errors, timeouts, proxy errors). Offline mode raises a builtin `ConnectionError`.
    """
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        transport_error = getattr(module, "TransportError", None)
        if isinstance(transport_error, type) and issubclass(transport_error, BaseException):
            errors.append(transport_error)
    return tuple(errors)


def _offline_mode() -> bool:
    """The client's offline flag, or the variable it reads, set after huggingface_hub was imported."""
    if huggingface_hub.is_offline_mode():
        return True
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; a script may set it later
    return any(os.environ.get(name, "").strip().upper() in _TRUE_VALUES for name in _OFFLINE_VARIABLES)


def _whoami(api: HfApi, timeout: float) -> dict[str, Any]:
    """`api.whoami()`, given up after `timeout` seconds.

    The client's shared HTTP session has no timeout, so on a blackholed network `whoami` would hang the caller; it
    runs in a daemon thread that is left behind if it does not answer in time.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["whoami"] = api.whoami()
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=call, name="hf-encdec-whoami", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise HubConnectionError(
            f"cannot reach the Hugging Face Hub at {api.endpoint}: no answer within {timeout} s. Check the network "
            "connection, proxy settings and HF_ENDPOINT, then retry; the model folder was not uploaded."
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["whoami"]


def _check_token(api: HfApi, timeout: float) -> dict[str, Any]:
    """Ask the endpoint who owns the token, before any upload starts."""
    try:
        return _whoami(api, timeout)
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 401:
            raise HubTokenRejectedError(f"the Hub at {api.endpoint} rejected the token (HTTP 401). {_TOKEN_HELP}.") from err
        raise HubError(f"the Hub at {api.endpoint} refused the token check: {err}") from err
    except _transport_errors() as err:
        raise HubConnectionError(
            f"cannot reach the Hugging Face Hub at {api.endpoint} ({type(err).__name__}: {err}). Check the network "
            "connection, proxy settings and HF_ENDPOINT, then retry; the model folder was not uploaded."
        ) from err


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload hf_encdec translation model",
    endpoint: str | None = None,
    timeout: float = 10.0,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    strip_local_paths: bool = False,
) -> str:
    """Create (or reuse) the model repo `repo_id` and upload the contents of `output_dir` in one commit.

    Args:
        output_dir: a saved model folder (config, weights, remote code, tokenizer, README.md, figures).
        repo_id: `user/name` or `org/name` (a bare `name` goes to the token owner's namespace).
        token: a Hub token with write access; defaults to `HF_TOKEN` or the token saved by `hf auth login`.
        private: create the repository as private (ignored if it already exists).
        commit_message: the commit message on the Hub.
        endpoint: Hub URL; defaults to `HF_ENDPOINT` (read now, not at import) or huggingface.co.
        timeout: seconds allowed for the connectivity and token check made before uploading.
        ignore_patterns: files under `output_dir` not to upload; by default Trainer checkpoints and logs.
        strip_local_paths: rewrite the local paths of the files to upload in place first (`strip_local_paths()`)
            instead of refusing to upload them.

    Returns:
        The URL of the commit on the Hub.

    Raises:
        FileNotFoundError: `output_dir` is not a folder with files in it.
        LocalPathsError: files to upload hold local paths (checked before anything else), and `strip_local_paths`
            is not set or cannot rewrite them (binary files).
        HubOfflineError, MissingHubTokenError: offline mode is on, or no token is available (checked before any
            network access).
        HubConnectionError, HubTokenRejectedError, HubUploadError, HubError: the endpoint cannot be reached, the
            token is rejected, or the Hub refuses the repository or the upload.
    """
    folder = Path(output_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(f"nothing to upload: {folder} is not a folder with files in it")
    if not (folder / "README.md").is_file():
        logger.warning("%s has no README.md; write one with hf_encdec.model_card.write_model_card first", folder)
    _check_local_paths(folder, ignore_patterns, strip_local_paths)
    if _offline_mode():
        raise HubOfflineError(
            "cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set). "
            "Unset it and retry."
        )
    token = token or huggingface_hub.get_token()
    if not token:
        raise MissingHubTokenError(
            "cannot push to the Hub: no Hugging Face token found (token=None, HF_TOKEN unset, and no saved login). "
            f"{_TOKEN_HELP}, or pass token=..."
        )
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token)
    whoami = _check_token(api, timeout)
    logger.info("pushing %s to %s/%s as %s", folder, endpoint, repo_id, whoami.get("name", "<unknown user>"))
    try:
        repo_url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            repo_type="model",
            ignore_patterns=list(ignore_patterns) or None,
        )
    except HfHubHTTPError as err:
        raise HubUploadError(
            f"the Hub refused the upload of {folder} to {repo_id}: {err}. Check that the token has write access "
            "to that namespace and that the repository name is valid."
        ) from err
    except _transport_errors() as err:
        raise HubConnectionError(
            f"lost the connection to {endpoint} while uploading {folder} to {repo_id} ({type(err).__name__}: "
            f"{err}); retry when the network is back (already uploaded files are skipped)."
        ) from err
    logger.info("uploaded %s: %s", folder, commit.commit_url)
    return str(commit.commit_url)
