"""Checkpoint averaging: the mean of every parameter, tied weights kept tied, one architecture only, and the
`hf-encdec average` command on a real run's checkpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import build, token_ids
from hf_encdec.cli import main
from hf_encdec.inference import load_translator, translate
from hf_encdec.training.averaging import average_checkpoints, run_checkpoints


def _saved(model: torch.nn.Module, folder: Path, *, shift: float = 0.0, seed: int = 0) -> Path:
    """Save `model` with every floating-point parameter moved by seeded noise times `shift` (a later checkpoint)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(shift * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def two_checkpoints(tmp_path: Path) -> list[Path]:
    return [_saved(build("pointer_generator"), tmp_path / "a"),
            _saved(build("pointer_generator"), tmp_path / "b", shift=0.1, seed=1)]


def test_the_average_is_the_mean_of_every_parameter_and_tied_weights_stay_tied(two_checkpoints: list[Path]) -> None:
    averaged = average_checkpoints(two_checkpoints)
    first, second = (load_file(str(folder / "model.safetensors")) for folder in two_checkpoints)
    state = averaged.state_dict()
    assert len(first) > 10
    moved = 0
    for name, tensor in first.items():
        torch.testing.assert_close(state[name], (tensor + second[name]) / 2, rtol=0, atol=1e-6)
        moved += not torch.equal(tensor, second[name])
    assert moved > 10  # the two checkpoints really differ
    assert averaged.config.tie_word_embeddings
    assert averaged.get_output_embeddings().weight.data_ptr() == averaged.get_input_embeddings().weight.data_ptr()
    assert not averaged.training


def test_copies_of_one_checkpoint_average_to_the_same_outputs(two_checkpoints: list[Path]) -> None:
    original = build("pointer_generator")
    averaged = average_checkpoints([two_checkpoints[0]] * 3)
    ids = token_ids()
    with torch.no_grad():
        expected = original(input_ids=ids, decoder_input_ids=ids[:, :5]).logits
        got = averaged(input_ids=ids, decoder_input_ids=ids[:, :5]).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_checkpoints_of_different_architectures_are_refused(two_checkpoints: list[Path], tmp_path: Path) -> None:
    other = _saved(build("pointer_generator", {"intermediate_size": 48}), tmp_path / "other")
    with pytest.raises(ValueError, match=r"configs differ in .*intermediate_size.*one run"):
        average_checkpoints([two_checkpoints[0], other])
    with pytest.raises(ValueError, match="at least one checkpoint folder"):
        average_checkpoints([])


def test_checkpoints_of_different_tokenizers_are_refused_and_one_without_a_fingerprint_is_not(tmp_path: Path) -> None:
    """A run resumed across versions has checkpoints with and without a tokenizer fingerprint: they average."""
    models = [build("pointer_generator") for _ in range(3)]
    models[1].config.tokenizer_fingerprint = "0123456789abcdef"
    models[2].config.tokenizer_fingerprint = "fedcba9876543210"
    folders = [_saved(model, tmp_path / str(index)) for index, model in enumerate(models)]
    averaged = average_checkpoints(folders[:2])  # the first without a fingerprint: no refusal, and the run's kept
    assert averaged.config.tokenizer_fingerprint == "0123456789abcdef"
    with pytest.raises(ValueError, match=r"different tokenizers \(tokenizer_fingerprint .*0123456789abcdef.*fedcba98"):
        average_checkpoints(folders)


def test_a_folder_without_checkpoints_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no checkpoint-<step> folders"):
        run_checkpoints(tmp_path)


TINY = ["--data", "synthetic:reverse", "--preset", "transformer-tiny", "--vocab-size", "300", "--max-tokens", "512",
        "--eval-size", "16", "--test-size", "16", "--num-beams", "2", "--max-new-tokens", "16", "--logging-steps", "5"]


def test_hf_encdec_average_makes_a_model_folder_from_a_runs_last_checkpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "20", "--eval-steps", "10", "--output-dir", str(run)]) == 0
    checkpoints = run_checkpoints(run)
    assert [folder.name for folder in checkpoints] == ["checkpoint-10", "checkpoint-20"]

    output = tmp_path / "averaged"
    assert main(["average", str(run), "--last", "2", "--output-dir", str(output)]) == 0
    model, tokenizer = load_translator(output)
    steps = [load_file(str(folder / "model.safetensors")) for folder in checkpoints]
    name = "model.encoder.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(model.state_dict()[name], (steps[0][name] + steps[1][name]) / 2, rtol=0, atol=1e-6)
    assert model.config.training_data == "synthetic:reverse"  # what translate() reads, kept from the run
    # the run's decoding settings (the length penalty chosen on validation), not the checkpoint's in-training ones
    assert json.loads((output / "generation_config.json").read_text()) == json.loads(
        (run / "generation_config.json").read_text()
    )
    assert len(translate(model, tokenizer, ["a b c", "d e"], progress=False)) == 2

    report = tmp_path / "report.json"
    assert main(["evaluate", str(output), "--data", "synthetic:reverse", "--limit", "8", "--mbr", "3",
                 "--report", str(report)]) == 0
    scored = json.loads(report.read_text())
    assert scored["mbr"] == 3 and scored["beams"] == 3 and scored["sentences"] == 8  # the beam widened to the pool

    caplog.set_level(logging.ERROR)
    assert main(["average", str(run), "--last", "3", "--output-dir", str(tmp_path / "three")]) == 2
    assert "--last 3" in caplog.text and "keeps 2 checkpoint(s)" in caplog.text
    assert main(["average", str(run), "--output-dir", str(output)]) == 2  # never overwrites
    assert "exists" in caplog.text
    assert not (tmp_path / "three").exists()
