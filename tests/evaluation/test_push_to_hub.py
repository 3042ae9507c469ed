"""push_to_hub fails fast and clearly without a token, offline, or without a reachable endpoint, and publishes no
local path: what it uploads of a run names neither the data folder, nor the run folder, nor the home folder.

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
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS as CLIENT_IGNORE_PATTERNS

from hf_encdec.cli import main
from hf_encdec.hub import (
    DEFAULT_IGNORE_PATTERNS,
    HubConnectionError,
    HubOfflineError,
    LocalPathsError,
    MissingHubTokenError,
    find_local_paths,
    push_to_hub,
    upload_files,
)

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


# ---- no local paths in what push uploads ----------------------------------------------------------------------------

RUN = ["--preset", "transformer-tiny", "--vocab-size", "280", "--max-tokens", "512", "--max-steps", "6",
       "--eval-steps", "3", "--eval-size", "8", "--test-size", "16", "--num-beams", "2", "--max-new-tokens", "8"]


def _write_pairs(folder: Path) -> Path:
    """A user's parallel data folder: train/validation/test JSON Lines of digit sequences and their reversal."""
    folder.mkdir(parents=True)
    for split, size in (("train", 240), ("validation", 24), ("test", 24)):
        rows = [{"source": f"{i % 7} {i % 5} {i % 3}", "target": f"{i % 3} {i % 5} {i % 7}"} for i in range(size)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def home_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(home, data, run): a tiny run trained with `hf-encdec train` on a data folder under a long, distinctive
    absolute path inside the user's home folder (HOME points there while the module runs), written there too."""
    home = tmp_path_factory.mktemp("home") / "alice-q7xv2-distinctive-user"
    data = _write_pairs(home / "work" / "projects-2031-kx9" / "private-corpora-zq4" / "heldout")
    run = home / "runs" / "heldout-en-de"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        assert main(["train", "--data", str(data), *RUN, "--output-dir", str(run)]) == 0
        yield home, data, run


def _client_upload_set(monkeypatch: pytest.MonkeyPatch, calls: dict[str, Any]) -> None:
    """HfApi.create_repo/upload_folder replaced: upload_folder records the files huggingface_hub itself would add
    to the commit (its own listing and filtering, `_prepare_upload_folder_additions`, with the patterns
    `upload_folder` passes it), and uploads nothing."""

    def create_repo(self: HfApi, **kwargs: Any) -> huggingface_hub.RepoUrl:
        return huggingface_hub.RepoUrl(f"{self.endpoint}/{kwargs['repo_id']}", endpoint=self.endpoint)

    def upload_folder(self: HfApi, **kwargs: Any) -> Any:
        additions = self._prepare_upload_folder_additions(
            kwargs["folder_path"], "", ignore_patterns=[*kwargs["ignore_patterns"], *CLIENT_IGNORE_PATTERNS],
            repo_type="model",
        )
        calls["uploaded"] = sorted(operation.path_in_repo for operation in additions)
        return type("Commit", (), {"commit_url": f"{self.endpoint}/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    # the model card's metadata check is a request to the Hub
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, content, **kwargs: None)


def test_nothing_push_uploads_names_the_data_folder_the_run_folder_or_home(
    home_run: tuple[Path, Path, Path], fake_hub: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, data, run = home_run
    monkeypatch.setenv("HOME", str(home))
    calls: dict[str, Any] = {}
    _client_upload_set(monkeypatch, calls)
    push_to_hub(run, "someone/model", token="hf_good", endpoint=f"http://127.0.0.1:{fake_hub.server_port}")

    uploaded = calls["uploaded"]
    assert uploaded == upload_files(run)  # what push checks is what the client uploads
    for name in ("config.json", "generation_config.json", "eval_results.json", "train_options.json", "README.md",
                 "tokenizer.json", "tokenizer_config.json", "test_translations.jsonl", "loss_curve.png",
                 "model.safetensors", "modeling_transformer.py"):
        assert name in uploaded, name
    secrets = [str(data).encode(), str(run).encode(), str(home).encode(), b"alice-q7xv2", b"private-corpora-zq4"]
    for name in uploaded:
        content = (run / name).read_bytes()
        assert not [secret for secret in secrets if secret in content], name
    # the same search finds the paths where they are (the Trainer's own files, which stay local)
    assert str(run).encode() in (run / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_bytes()
    # what the code needs is kept as a label, the data folder named by its base name
    assert json.loads((run / "config.json").read_text())["training_data"] == "files"
    report = json.loads((run / "eval_results.json").read_text())
    options = json.loads((run / "train_options.json").read_text())
    assert report["data"] == options["data"] == report["options"]["data"] == "heldout"
    assert options["output_dir"] == "heldout-en-de" and (run / report["best_checkpoint"]).is_dir()
    assert find_local_paths(run) == []


def _old_run_folder(folder: Path, data: str, run: str) -> Path:
    """What a run folder of an earlier version held: absolute paths in config.json, eval_results.json and
    train_options.json, and the data folder in a model card line."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "hf_encdec_transformer", "training_data": data}))
    options = {"data": data, "output_dir": run, "preset": "transformer-tiny"}
    (folder / "train_options.json").write_text(json.dumps(options))
    (folder / "eval_results.json").write_text(json.dumps({
        "data": data, "best_checkpoint": f"{run}/checkpoints/checkpoint-6", "test": {"bleu": 1.0},
        "options": {"data": data, "output_dir": run, "config_file": None},
        # a test sentence that is itself a path is the data, not a local path
        "samples": [{"source": "/etc/fstab", "reference": "/etc/fstab", "translation": "/etc/fstab"}],
    }))
    (folder / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# model\n\nTrained on {data}.\n")
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"merges": [["/", "usr"], ["/usr", "/share"]]}}))
    (folder / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    state = {"best_model_checkpoint": f"{run}/checkpoints/checkpoint-6"}
    (folder / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text(json.dumps(state))
    return folder


def test_push_refuses_an_old_run_folder_naming_each_file_and_key(
    tmp_path: Path, no_saved_token: None, no_network: list[Any], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home" / "bob-distinctive"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    data, run = f"{home}/work/heldout", f"{home}/runs/old"
    folder = _old_run_folder(tmp_path / "old", data, run)
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    with pytest.raises(LocalPathsError) as error:
        push_to_hub(folder, "someone/model", token="hf_dummy")
    found = {(item.file, item.key) for item in error.value.found}
    assert found == {
        ("config.json", "training_data"), ("train_options.json", "data"), ("train_options.json", "output_dir"),
        ("eval_results.json", "data"), ("eval_results.json", "best_checkpoint"), ("eval_results.json", "options.data"),
        ("eval_results.json", "options.output_dir"), ("README.md", "line 6"),
    }  # not the samples, the tokenizer's tokens or the checkpoints, which are not uploaded
    message = str(error.value)
    assert f"config.json: training_data = '{data}'" in message and "strip_local_paths=True" in message
    assert no_network == [] and {path: path.read_bytes() for path in before} == before
    # the command says what to pass
    assert main(["push", str(folder), "someone/model"]) == 2
    assert "--strip-local-paths" in caplog.text and "eval_results.json: options.output_dir" in caplog.text

    # stripped, the folder gets as far as the token check (there is none here) and holds no local path any more
    with pytest.raises(MissingHubTokenError):
        push_to_hub(folder, "someone/model", strip_local_paths=True)
    assert no_network == [] and find_local_paths(folder) == []
    assert json.loads((folder / "config.json").read_text())["training_data"] == "files"
    report = json.loads((folder / "eval_results.json").read_text())
    assert report["data"] == report["options"]["data"] == "heldout" and report["options"]["output_dir"] == "old"
    # the moved folder still holds checkpoints/checkpoint-6: the best checkpoint is named by its place in it
    assert report["best_checkpoint"] == "checkpoints/checkpoint-6"
    assert report["samples"][0]["source"] == "/etc/fstab"
    assert json.loads((folder / "train_options.json").read_text()) == {"data": "heldout", "output_dir": "old",
                                                                      "preset": "transformer-tiny"}
    assert (folder / "README.md").read_text().endswith("Trained on heldout.\n")
    assert (folder / "tokenizer.json").read_bytes() == before[folder / "tokenizer.json"]
    checkpoint_state = folder / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    assert checkpoint_state.read_bytes() == before[checkpoint_state]  # not uploaded, not touched


def test_a_local_path_that_cannot_be_rewritten_stops_the_push(
    tmp_path: Path, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "carol-distinctive"
    monkeypatch.setenv("HOME", str(home))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\x80\x04\x95" + f"{home}/runs/x".encode() + b"\x00\xff")
    (folder / "test_translations.jsonl").write_text(json.dumps({"source": f"see {home}/notes"}) + "\n")
    with pytest.raises(LocalPathsError, match="binary or data files") as error:
        push_to_hub(folder, "someone/model", token="hf_dummy", strip_local_paths=True)
    assert {(item.file, item.key.split()[0]) for item in error.value.found} == {
        ("weights.bin", "byte"), ("test_translations.jsonl", "line")
    }
    # the translations (data) are left as they are; leaving both files out of the upload lets the check pass
    assert str(home) in (folder / "test_translations.jsonl").read_text()
    assert find_local_paths(folder, [*DEFAULT_IGNORE_PATTERNS, "weights.bin", "*.jsonl"]) == []
    assert no_network == []
