"""Upload a trained hf_encdec model folder to the Hugging Face Hub.

`push_to_hub` uploads such a folder with `HfApi.create_repo` + `upload_folder`, after the client's own checks: offline
mode (`huggingface_hub.is_offline_mode`), a token (`huggingface_hub.get_token`) and who owns it (`HfApi.whoami`). It
fails fast with a `HubError` subclass that says what is missing and how to fix it: offline mode on, no token (then
nothing touches the network), the endpoint unreachable within `timeout` seconds, a rejected token, or a refused upload.
Model cards are written by `hf_encdec.model_card`.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError

logger = logging.getLogger(__name__)

__all__ = [
    "HubConnectionError",
    "HubError",
    "HubOfflineError",
    "HubTokenRejectedError",
    "HubUploadError",
    "MissingHubTokenError",
    "push_to_hub",
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

    Returns:
        The URL of the commit on the Hub.

    Raises:
        FileNotFoundError: `output_dir` is not a folder with files in it.
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
