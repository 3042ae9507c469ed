"""push_to_hub fails fast and clearly without a token, offline, or without a reachable endpoint.

No test here reaches beyond the loopback interface: every socket connection to another address raises.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub import HfApi, constants

from hf_encdec.cli import main
from hf_encdec.hub import HubConnectionError, HubOfflineError, MissingHubTokenError, push_to_hub

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE")
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# model\n", encoding="utf-8")
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record and refuse every socket connection."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Allow connections to loopback addresses only, bypassing any proxy from the environment."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if host not in LOOPBACK:
            raise AssertionError(f"non-loopback network access attempted: {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.close_session()  # the shared HTTP client reads proxy settings when it is created
    yield
    huggingface_hub.close_session()


@pytest.fixture
def no_saved_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in TOKEN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-such-token"))
    assert huggingface_hub.get_token() is None


class _FakeHub(BaseHTTPRequestHandler):
    """Answers /api/whoami-v2 with the status in `server.whoami_status`."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.requests.append((self.path, self.headers.get("authorization")))  # type: ignore[attr-defined]
        status = self.server.whoami_status  # type: ignore[attr-defined]
        body = json.dumps({"name": "tester", "type": "user"} if status == 200 else {"error": "Invalid token"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return


@pytest.fixture
def fake_hub(loopback_only: None) -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _FakeHub)
    server.requests = []  # type: ignore[attr-defined]
    server.whoami_status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_without_token_fails_before_any_network_access(
    model_dir: Path, no_saved_token: None, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(RuntimeError, match="no Hugging Face token") as error:
        push_to_hub(model_dir, "someone/model")
    message = str(error.value)
    assert "HF_TOKEN" in message and "login" in message
    assert no_network == []


def test_offline_mode_fails_before_any_network_access(
    model_dir: Path, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline mode"):
        push_to_hub(model_dir, "someone/model", token="hf_dummy")
    assert no_network == []


def test_missing_folder_is_reported(tmp_path: Path, no_network: list[Any]) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to upload"):
        push_to_hub(tmp_path / "absent", "someone/model", token="hf_dummy")


def test_token_but_unreachable_endpoint_raises_connection_message(
    model_dir: Path, loopback_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback is closed here: the connection is refused at once.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match=r"cannot reach the Hugging Face Hub at http://127\.0\.0\.1:9") as error:
        push_to_hub(model_dir, "someone/model", token="hf_dummy", timeout=2.0)
    assert "HF_ENDPOINT" in str(error.value)
    assert error.value.__cause__ is not None  # the transport error is kept for debugging


def test_rejected_token_says_how_to_log_in(model_dir: Path, fake_hub: HTTPServer) -> None:
    fake_hub.whoami_status = 401  # type: ignore[attr-defined]
    endpoint = f"http://127.0.0.1:{fake_hub.server_port}"
    with pytest.raises(RuntimeError, match="rejected the token") as error:
        push_to_hub(model_dir, "someone/model", token="hf_wrong", endpoint=endpoint)
    assert "hf auth login" in str(error.value) or "huggingface-cli login" in str(error.value)
    assert fake_hub.requests == [("/api/whoami-v2", "Bearer hf_wrong")]  # type: ignore[attr-defined]


def test_valid_token_creates_repo_and_uploads_folder(
    model_dir: Path, fake_hub: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, Any] = {}

    def create_repo(self: HfApi, **kwargs: Any) -> huggingface_hub.RepoUrl:
        calls["create_repo"] = kwargs
        calls["endpoint"] = self.endpoint
        return huggingface_hub.RepoUrl(f"{self.endpoint}/{kwargs['repo_id']}", endpoint=self.endpoint)

    def upload_folder(self: HfApi, **kwargs: Any) -> Any:
        calls["upload_folder"] = kwargs
        return type("Commit", (), {"commit_url": f"{self.endpoint}/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    endpoint = f"http://127.0.0.1:{fake_hub.server_port}"
    url = push_to_hub(model_dir, "someone/model", token="hf_good", endpoint=endpoint, private=True)

    assert url == f"{endpoint}/someone/model/commit/abc"
    assert calls["endpoint"] == endpoint
    assert calls["create_repo"]["repo_id"] == "someone/model"
    assert calls["create_repo"]["private"] is True and calls["create_repo"]["exist_ok"] is True
    assert calls["upload_folder"]["folder_path"] == str(model_dir)
    assert calls["upload_folder"]["repo_id"] == "someone/model"
    assert "checkpoint-*/*" in calls["upload_folder"]["ignore_patterns"]


def test_errors_are_typed_and_the_cli_names_its_own_remedy(
    model_dir: Path, no_saved_token: None, no_network: list[Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(MissingHubTokenError, match="pass token="):
        push_to_hub(model_dir, "someone/model")
    # the command has no token argument: its message says how to log in instead
    assert main(["push", str(model_dir), "someone/model"]) == 2
    assert "hf auth login" in caplog.text and "token=" not in caplog.text
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubOfflineError):
        push_to_hub(model_dir, "someone/model", token="hf_dummy")
    assert no_network == []


def test_a_silent_endpoint_fails_after_the_timeout(model_dir: Path, loopback_only: None) -> None:
    # accepts connections but never answers, like a blackholed network
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    started = time.monotonic()
    try:
        with pytest.raises(HubConnectionError, match="no answer within 0.5 s"):
            push_to_hub(model_dir, "someone/model", token="hf_dummy", endpoint=endpoint, timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        server.close()
