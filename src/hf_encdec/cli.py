"""`hf-encdec`: train, translate with, evaluate and share translation models.

    hf-encdec train                         # the main job: gettext en->de (27.6 min on 2 AMD EPYC cores, 2026-11-21)
    hf-encdec train --quick                 # a smoke run of a few minutes
    hf-encdec train --time-budget 28 --max-steps 10000   # as many steps as fit in 28 minutes on this machine
    hf-encdec train --data gettext:fr --preset transformer-small --output-dir runs/fr
    hf-encdec train --data pairs.tsv --config my_model.json
    torchrun --nproc_per_node 2 -m hf_encdec train ...     # data-parallel (gloo on CPU, NCCL on GPUs)
    echo "Open the file" | hf-encdec translate runs/gettext-de --beams 4
    hf-encdec translate-po runs/gettext-de untranslated.po --output filled.po   # fill a gettext catalog, msgfmt -c clean
    hf-encdec evaluate runs/gettext-de --data gettext:de --split test --report report.json
    hf-encdec push runs/gettext-de user/my-model
    hf-encdec average runs/gettext-de --last 2 --output-dir runs/gettext-de-avg   # checkpoint averaging
    hf-encdec distill runs/gettext-de --data gettext:de --output-dir runs/distilled-de   # teacher outputs as targets
    hf-encdec train --preset nat-small --data runs/distilled-de --output-dir runs/nat-de  # a NAT on them
    hf-encdec pretrain --output-dir runs/pretrained-de          # denoising pre-training on the machine's own text
    hf-encdec train --init-from runs/pretrained-de --output-dir runs/gettext-de   # fine-tuned from it
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("hf_encdec")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .training.presets import preset_names
    from .training.recipe import TrainOptions

    defaults = TrainOptions()
    train = sub.add_parser("train", help="train a translation model end to end", description=_train.__doc__)
    train.add_argument("--data", help=f"gettext[:LANG], gettext+man:LANG (with the translated manual pages), "
                       "gettext+vim:LANG (with vim's catalog), gettext+man+vim:LANG, synthetic:TASK, or a data "
                       f"file/folder (default: {defaults.data})")
    train.add_argument("--output-dir", default=defaults.output_dir, help="run folder (default: %(default)s)")
    train.add_argument("--source-lang", help="data files: source language (key of a 'translation' column, or a "
                       "column name); also the model card's source language")
    train.add_argument("--target-lang", help="data files: target language; also the model card's target language")
    model = train.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=preset_names(), help=f"model size (default: {defaults.preset})")
    model.add_argument("--config", dest="config_file", help="JSON model config with model_type and fields")
    train.add_argument("--quick", action="store_true", help="a smoke run of a few minutes (600 steps, 500 test sentences, beam 2)")
    train.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last complete "
                       "checkpoint, with the options it recorded (a run trained on data files needs --data again)")
    train.add_argument("--overwrite", action="store_true", help="delete an existing run in --output-dir first")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="model config override (JSON value), repeatable")
    for option in ("vocab_size", "max_steps", "max_tokens", "warmup_steps", "eval_steps", "eval_size", "test_size",
                   "num_beams", "max_new_tokens", "max_source_length", "max_target_length", "seed",
                   "gradient_accumulation_steps", "early_stopping_patience", "save_total_limit", "num_samples",
                   "logging_steps", "num_iterations", "length_beam_size", "comparison_size"):
        train.add_argument(f"--{option.replace('_', '-')}", type=int, dest=option, help=f"(default: {getattr(defaults, option)})")
    train.add_argument("--decay-steps", type=int, dest="decay_steps", help="--lr-scheduler-type warmup_stable_decay: "
                       "the steps of its final decay (default: a fifth of --max-steps; with --time-budget, set when "
                       "the decay has to begin)")
    train.add_argument("--time-budget", type=float, dest="time_budget", metavar="MINUTES",
                       help="train as many steps as fit in MINUTES (data preparation and validations included), "
                       "measured at the end of the warm-up, or with --lr-scheduler-type warmup_stable_decay when its "
                       "decay has to begin; --max-steps is then an upper bound (default: off)")
    train.add_argument("--length-penalty", type=float, dest="length_penalty",
                       help="beam length penalty for the test set and the saved model (default: picked on validation)")
    for option in ("learning_rate", "label_smoothing", "weight_decay"):
        train.add_argument(f"--{option.replace('_', '-')}", type=float, dest=option, help=f"(default: {getattr(defaults, option)})")
    train.add_argument("--bpe-dropout", type=float, dest="bpe_dropout", metavar="P",
                       help="BPE-dropout: skip each merge with probability P when segmenting the training pairs, a "
                       "new segmentation each epoch (Provilkov et al. 2020 use 0.1; default: off)")
    train.add_argument("--lr-scheduler-type", dest="lr_scheduler_type", help=f"(default: {defaults.lr_scheduler_type})")
    train.add_argument("--undistilled", help="NAT runs: a NAT run folder trained on the real references, compared "
                       "with this one on the same test pairs (token repetition with and without distillation)")
    train.add_argument("--init-from", help="a finished run folder whose weights of the same name and shape start "
                       "the model (e.g. a NAT from its autoregressive teacher; the tokenizers must be the same)")
    train.add_argument("--glancing-ratio-end", type=float, dest="glancing_ratio_end",
                       help="NAT runs with --set glancing_ratio=R: anneal the glancing ratio linearly from R to this "
                       "value over the run")
    train.add_argument("--tokenizer-model", choices=["bpe", "unigram"], help=f"(default: {defaults.tokenizer_model})")
    train.add_argument("--attn-implementation", choices=["sdpa", "eager", "flex_attention", "flash_attention_2"])
    train.add_argument("--scheduled-sampling", metavar="SCHEDULE",
                       help="feed the decoder its own predictions on a schedule, KIND[:NAME=VALUE,...] with KIND "
                       "linear, exponential or inverse_sigmoid (e.g. inverse_sigmoid:k=500); mode and passes: "
                       "--set scheduled_sampling_mode=argmax, --set scheduled_sampling_passes=2")
    train.set_defaults(func=_train)


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _train(args: argparse.Namespace) -> int:
    """Train a translation model: corpus, tokenizer, model, evaluation, model card, Hub-ready folder."""
    from .training.recipe import run_training

    options = _train_options(args)
    report = _in_run_folder(lambda: run_training(options))
    if report:
        _print_report(report, options.output_dir)
    return 0


def _train_options(args: argparse.Namespace, **defaults: Any) -> Any:
    """The TrainOptions the arguments give (over `defaults`, over the recipe's); a resumed run's recorded options
    for those not given."""
    from .training.recipe import TrainOptions

    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None and v is not False}  # 0 is a value
    if args.set:
        given["model_overrides"] = _parse_overrides(args.set)
    if given.get("config_file"):
        given["preset"] = None
    if args.resume:
        given = {**_recorded_train_options(args.output_dir, given), **given}
    given = {**defaults, **given}
    return TrainOptions.quick(**given) if args.quick else TrainOptions(**given)


def _in_run_folder(run: Any) -> dict[str, Any]:
    """`run()`, with a run folder that already holds a run reported as what to do about it."""
    from .training.recipe import RunFolderExistsError

    try:
        return run()
    except RunFolderExistsError as error:
        raise FileExistsError(
            f"{error.path} already holds a run; pass --resume to continue it, --overwrite to start over "
            "(deletes it), or choose another --output-dir"
        ) from error


def _pretrain_parser(sub: argparse._SubParsersAction) -> None:
    from .training.presets import preset_names
    from .training.recipe import TrainOptions

    defaults = TrainOptions()
    pretrain = sub.add_parser("pretrain", help="denoising pre-training on the machine's own text, for --init-from",
                              description=_pretrain.__doc__)
    pretrain.add_argument("--lang", default="de", help="the target language of the translation model to come "
                          "(its catalogs and its manual pages under <man root>/LANG; default: %(default)s)")
    pretrain.add_argument("--output-dir", default="runs/pretrained-de", help="run folder (default: %(default)s)")
    pretrain.add_argument("--corpus-dir", help="the denoising corpus folder (default: OUTPUT_DIR-corpus)")
    pretrain.add_argument("--mask-ratio", type=float, default=0.3, help="share of words hidden (default: %(default)s)")
    pretrain.add_argument("--english-share", type=float, default=1.0,
                          help="English texts per --lang text (0: the target language only; default: %(default)s)")
    pretrain.add_argument("--man-dir", action="append", dest="man_dirs", metavar="DIR",
                          help="a manual page root, repeatable (default: the machine's manpath)")
    model = pretrain.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=preset_names(), help=f"model size (default: {defaults.preset})")
    model.add_argument("--config", dest="config_file", help="JSON model config with model_type and fields")
    pretrain.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="model config override")
    pretrain.add_argument("--quick", action="store_true", help="a smoke run (600 steps, 4000-token vocabulary: "
                          "fine-tune it with `train --quick`)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    pretrain.add_argument("--overwrite", action="store_true", help="delete an existing run in --output-dir first")
    for option in ("vocab_size", "max_steps", "max_tokens", "warmup_steps", "eval_steps", "eval_size", "test_size",
                   "seed", "logging_steps"):
        pretrain.add_argument(f"--{option.replace('_', '-')}", type=int, dest=option,
                              help=f"(default: {getattr(defaults, option)})")
    pretrain.add_argument("--learning-rate", type=float, help=f"(default: {defaults.learning_rate})")
    pretrain.set_defaults(func=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    """Denoising pre-training (BART's text infilling, Lewis et al. 2020): about 30% of the words of each text hidden in
    spans, the model writes the text back. The texts: the --lang messages of the translation corpus's training
    packages and the --lang manual pages, and as much English (the training packages' messages, the English manual
    pages); never a validation or test package. Writes the corpus to --corpus-dir and the run to --output-dir;
    fine-tune with `hf-encdec train --init-from OUTPUT_DIR` (the same tokenizer options)."""
    from .training.pretrain import pretrain

    args.data = args.corpus_dir or f"{args.output_dir}-corpus"
    # greedy reconstruction for the run's own test report: the length penalty is the fine-tuning's business
    options = _train_options(args, num_beams=1)
    report = _in_run_folder(lambda: pretrain(options, lang=args.lang, corpus_dir=args.data,
                                             mask_ratio=args.mask_ratio, english_share=args.english_share,
                                             man_dirs=args.man_dirs))
    if report:
        _print_report(report, options.output_dir)
    return 0


def _recorded_train_options(output_dir: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options a resumed run recorded, for each option not given again. Local paths are recorded by their base
    names only, so a run trained on data files (or a --config file, or --undistilled) needs those given again."""
    from .data import FILES_LABEL, corpus_label
    from .training.recipe import PATH_OPTIONS, RESUME_FREE_OPTIONS, recorded_options

    recorded = recorded_options(output_dir) or {}
    if "data" in recorded and corpus_label(recorded["data"]) == FILES_LABEL and "data" not in given:
        raise SystemExit(f"{output_dir} was trained on data files named {recorded['data']!r}; pass --data PATH to resume it")
    if recorded.get("config_file") and "config_file" not in given:
        raise SystemExit(f"{output_dir} was trained with --config {recorded['config_file']!r}; pass --config PATH to resume it")
    skipped = set(RESUME_FREE_OPTIONS) | (set(PATH_OPTIONS) - {"data"})
    return {k: v for k, v in recorded.items() if k not in skipped}


def _print_report(report: dict[str, Any], output_dir: str) -> None:
    test, baseline = report["test"], report["copy_baseline"]
    print(f"\n== {report['model']} ({report['parameters'] / 1e6:.1f}M parameters) on {report['data']}, "
          f"{report['test_sentences']} test sentences ==")
    print(f"{'':22}{'BLEU':>8}{'chrF':>8}")
    print(f"{'model (beam search)':22}{test['bleu']:8.2f}{test['chrf']:8.2f}")
    print(f"{'copy-the-source':22}{baseline['bleu']:8.2f}{baseline['chrf']:8.2f}")
    print(f"training {report['train_minutes']} min, test translation {report['test_translation_minutes']} min, "
          f"total {report['total_minutes']} min")
    for sample in report["samples"]:
        print(f"\n  source:      {sample['source']}\n  reference:   {sample['reference']}\n  translation: {sample['translation']}")
    # the report names the run folder by its base name only; here, on the user's own terminal, the whole path
    print(f"\nHub-ready folder: {output_dir}")


def _coverage_penalty(args: argparse.Namespace) -> dict[str, float]:
    """generate()'s coverage_penalty when --coverage-penalty is given (only the copy models take it), and translate()'s
    mbr when --mbr is."""
    options: dict[str, float] = {} if args.coverage_penalty is None else {"coverage_penalty": args.coverage_penalty}
    if getattr(args, "mbr", None) is not None:
        options["mbr"] = args.mbr
    return options


def _translate(args: argparse.Namespace) -> int:
    from .inference import load_translator, translate

    model, tokenizer = load_translator(args.model)
    source = Path(args.input).read_text(encoding="utf-8") if args.input else sys.stdin.read()
    lines = source.splitlines()
    keep = [i for i, line in enumerate(lines) if line.strip()]
    translations = translate(
        model, tokenizer, [lines[i] for i in keep], num_beams=args.beams, length_penalty=args.length_penalty,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=args.output is not None,
        protect=False if args.no_protect else None, draft=args.draft, **_coverage_penalty(args),
        **_parallel_decoding(args, model, tokenizer),
    )
    output = [""] * len(lines)
    for index, text in zip(keep, translations):
        output[index] = text
    text = "\n".join(output) + ("\n" if output else "")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _parallel_decoding(args: argparse.Namespace, model: Any, tokenizer: Any) -> dict[str, Any]:
    """The NAT settings given on the command line (iterations, length beam, de-duplication, an AR re-scorer)."""
    from .inference import is_autoregressive, load_translator

    settings = {name: value for name, value in (("num_iterations", args.iterations),
                                                  ("length_beam_size", args.length_beam_size)) if value is not None}
    if args.deduplicate:
        settings["deduplicate"] = True
    if args.rescore_with:
        rescorer, rescorer_tokenizer = load_translator(args.rescore_with, device=model.device)
        if rescorer_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"--rescore-with {args.rescore_with} has another tokenizer than {args.model}: re-score "
                             "with the teacher the NAT was distilled from")
        settings["rescorer"] = rescorer
    if settings and is_autoregressive(model):
        given = ", ".join("--" + name.replace("_", "-") for name in settings)
        raise ValueError(f"{given}: settings of non-autoregressive (NAT) models; {args.model} is autoregressive")
    return settings


def _translate_po(args: argparse.Namespace) -> int:
    """Fill the untranslated entries of a gettext catalog (.po, or a .pot with --language) with a trained model.

    A catalog GNU gettext would reject (an unterminated string, a bad escape, a duplicate msgid, a header charset
    that does not decode the file; with gettext-tools installed, whatever `msgfmt --check-format` rejects) is
    refused with its file, line and problem, exit status 2, and nothing is written. Filled entries are marked fuzzy
    (for review); layout and format directives are kept by construction, no translation holds U+FFFD (a character
    decoded from an invalid byte sequence), and an entry where no hypothesis passes is left untranslated and listed.
    Only the filled msgstrs, their fuzzy flags and the header's Language, Plural-Forms, Content-Type (UTF-8) and
    Content-Transfer-Encoding change. msgctxt is used for matching only (the model was trained without it). With
    gettext-tools installed, the output is checked with `msgfmt -c --use-fuzzy` and the command fails when it
    rejects an entry.
    """
    from .inference import fill_catalog, load_translator
    from .localization.catalog import check_catalog, directive_problems, msgfmt_check

    check_catalog(args.input)  # before the model loads: a refused catalog costs nothing and writes nothing
    model, tokenizer = load_translator(args.model)
    report = fill_catalog(
        model, tokenizer, args.input, args.output, language=args.language, overwrite=args.overwrite,
        protect=not args.no_protect, num_beams=args.beams, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
    )
    logger.info("%s", report.summary())
    for msgid in report.not_filled:
        logger.info("left untranslated: %r", msgid)
    problems = directive_problems(args.output)
    if problems:
        logger.error("%d entries break their source's directives or edge newlines, e.g. %s",
                     len(problems), next(iter(problems.items())))
    checked = msgfmt_check(args.output)
    if checked is None:
        logger.info("msgfmt (gettext-tools) is not installed: only the Python directive check ran")
    else:
        logger.info("msgfmt -c --use-fuzzy: %d of %d entries rejected%s", checked.rejected, checked.entries,
                    f", {checked.header_errors} header errors" if checked.header_errors else "")
        for line in checked.errors[:20]:
            logger.error("%s", line)
    return 1 if problems or (checked is not None and (checked.rejected or checked.header_errors)) else 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import copy_baseline_scores, corpus_scores
    from .inference import load_translator, translate

    if args.source_file:
        if not args.reference_file:
            raise SystemExit("--source-file needs --reference-file")
        sources = Path(args.source_file).read_text(encoding="utf-8").splitlines()
        references = Path(args.reference_file).read_text(encoding="utf-8").splitlines()
        if len(sources) != len(references):
            raise SystemExit(f"{args.source_file} has {len(sources)} lines but {args.reference_file} has {len(references)}")
    else:
        from .data import load_corpus

        corpus = load_corpus(args.data)
        if args.split not in corpus:
            raise SystemExit(f"split {args.split!r} not in the corpus; available: {', '.join(corpus)}")
        sources, references = list(corpus[args.split]["source"]), list(corpus[args.split]["target"])
    if args.limit:
        sources, references = sources[: args.limit], references[: args.limit]
    model, tokenizer = load_translator(args.model)
    hypotheses = translate(
        model, tokenizer, sources, num_beams=args.beams, length_penalty=args.length_penalty,
        max_new_tokens=args.max_new_tokens, protect=False if args.no_protect else None, **_coverage_penalty(args),
    )
    report = {
        "model": args.model,
        "data": args.source_file or f"{args.data}:{args.split}",
        "sentences": len(sources),
        # with --mbr the beam is widened to hold the pool (translate_nbest)
        "beams": max(args.beams or model.generation_config.num_beams or 1, args.mbr or 0),
        "length_penalty": args.length_penalty if args.length_penalty is not None else model.generation_config.length_penalty,
        **_coverage_penalty(args),
        "scores": corpus_scores(hypotheses, references),
        "copy_baseline": copy_baseline_scores(sources, references),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _distill(args: argparse.Namespace) -> int:
    """Sequence-level knowledge distillation (Kim & Rush 2016): the trained model in RUN_DIR translates the training
    split of --data; the corpus folder written to --output-dir (train: the teacher's translations; validation and
    test: the real references) trains a student with `hf-encdec train --data DIR`. Rerunning continues an
    interrupted distillation."""
    from .training.distill import distill_corpus

    manifest = distill_corpus(
        args.model, args.data, args.output_dir, num_beams=args.beams, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, max_train_samples=args.max_train_samples, chunk_size=args.chunk_size,
    )
    print(json.dumps(manifest, indent=2))
    return 0


def _average(args: argparse.Namespace) -> int:
    """Checkpoint averaging (Vaswani et al. 2017): the mean of the parameters of a run's last checkpoints, saved as a
    model folder that `translate` and `evaluate` take. Checkpoints are written every --eval-steps and the last
    `save_total_limit` are kept, so average what the run kept (--last) or name the folders (--checkpoints)."""
    from transformers import AutoTokenizer, GenerationConfig

    from .training.averaging import average_checkpoints, run_checkpoints

    output = Path(args.output_dir)
    if output.exists():
        raise FileExistsError(f"{output} exists; give a new --output-dir for the averaged model")
    if args.checkpoints:
        folders = [Path(folder) for folder in args.checkpoints]
    else:
        available = run_checkpoints(args.run)
        if args.last < 1 or args.last > len(available):
            raise ValueError(
                f"--last {args.last}: {args.run} keeps {len(available)} checkpoint(s) "
                f"({', '.join(path.name for path in available)}); give 1 to {len(available)}"
            )
        folders = available[-args.last:]
    model = average_checkpoints(folders)
    if (Path(args.run) / "generation_config.json").is_file():
        # a finished run's decoding settings (the length penalty chosen on validation), not those of the checkpoint,
        # which the Trainer wrote for its in-training evaluation
        model.generation_config = GenerationConfig.from_pretrained(args.run)
    tokenizer_folder = next((folder for folder in (folders[0], Path(args.run), Path(args.run) / "tokenizer")
                             if (folder / "tokenizer.json").is_file()), None)
    if tokenizer_folder is None:
        raise FileNotFoundError(f"no tokenizer.json in {folders[0]} or {args.run}: cannot make a model folder")
    tmp = output.with_name(output.name + ".partial")
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tokenizer_folder).save_pretrained(tmp)
    tmp.rename(output)  # the folder appears whole or not at all
    print(json.dumps({"output_dir": str(output), "checkpoints": [folder.name for folder in folders]}, indent=2))
    return 0


def _push(args: argparse.Namespace) -> int:
    """Upload a trained folder to the Hugging Face Hub (checkpoints, the training tokenizer copy and logs stay local).

    Nothing that would publish the machine's folders is uploaded: a folder whose files hold local paths (absolute
    paths, the home folder; run folders of earlier versions have them in config.json, eval_results.json and
    train_options.json) is refused with a list of each file and key, unless --strip-local-paths rewrites them in
    place first (a path becomes its base name, config.json's training_data its corpus label).
    """
    from .hub import LocalPathsError, MissingHubTokenError, push_to_hub

    try:
        url = push_to_hub(args.model, args.repo_id, private=args.private, strip_local_paths=args.strip_local_paths)
    except LocalPathsError as error:
        if args.strip_local_paths:
            raise
        raise RuntimeError(
            f"{args.model} holds local paths that `hf-encdec push` would publish (a run folder of an earlier "
            f"version?): {error.listing()}. Rerun with --strip-local-paths to rewrite them in place "
            "(a path becomes its base name, training_data its corpus label), or remove them yourself"
        ) from error
    except MissingHubTokenError as error:
        raise RuntimeError(
            "cannot push to the Hub: no Hugging Face token found (HF_TOKEN unset and no saved login). Create a token "
            "with write access at https://huggingface.co/settings/tokens, run `hf auth login` or export "
            "HF_TOKEN=<token>, then rerun `hf-encdec push`"
        ) from error
    print(url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-encdec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _pretrain_parser(sub)

    translate = sub.add_parser("translate", help="translate lines from stdin or a file")
    translate.add_argument("model", help="a trained model folder")
    translate.add_argument("--input", help="text file, one sentence a line (default: stdin)")
    translate.add_argument("--output", help="write here instead of stdout")
    translate.add_argument("--beams", type=int, help="beam size (default: the model's generation config)")
    translate.add_argument("--length-penalty", type=float, help="beam length penalty (default: the model's generation config)")
    translate.add_argument("--max-new-tokens", type=int, default=128)
    translate.add_argument("--mbr", type=int, metavar="N",
                           help="minimum Bayes risk: choose among at least N beam hypotheses the one with the highest "
                                "expected chrF against the others (default: off, the best-scoring hypothesis)")
    translate.add_argument("--coverage-penalty", type=float,
                           help="Wu et al.'s coverage penalty beta: beam search's hypotheses re-ranked by how "
                                "fully their copy attention covers the source (copy models; default: off)")
    translate.add_argument("--batch-size", type=int, default=64)
    translate.add_argument("--draft", metavar="DRAFTER_RUN|lookup:DRAFTER_RUN|source",
                           help="lossless speculative decoding (greedy, one sentence at a time, the same output): a NAT "
                                "drafter's run folder trained on this run's tokenizer (a CMLM NAT continues each "
                                "prefix; a CTC NAT, or any with 'lookup:', translates once and its translation is "
                                "looked up), or 'source' (source lookup)")
    translate.add_argument("--iterations", type=int, help="NAT models: rounds of mask-predict (1: one pass); for a "
                           "CTC model trained with glancing, rounds of refinement")
    translate.add_argument("--length-beam-size", type=int, help="NAT models: target lengths tried per sentence")
    translate.add_argument("--deduplicate", action="store_true",
                           help="NAT models: merge repeated neighbouring tokens the source does not repeat")
    translate.add_argument("--rescore-with", metavar="AR_RUN",
                           help="NAT models: keep the length candidate this autoregressive run (the NAT's teacher) "
                                "scores best (noisy parallel decoding; with --length-beam-size > 1)")
    translate.add_argument("--no-protect", action="store_true",
                           help="the best hypothesis as it is, even for a gettext model (whose layout and format "
                                "directives are otherwise kept)")
    translate.set_defaults(func=_translate)

    po = sub.add_parser("translate-po", help="fill a gettext catalog (.po/.pot) with a model's translations",
                        description=_translate_po.__doc__)
    po.add_argument("model", help="a trained model folder")
    po.add_argument("input", help="the catalog: a .po file, or a .pot template (then give --language)")
    po.add_argument("--output", required=True, help="the filled catalog (may be the input; written atomically)")
    po.add_argument("--language", help="the catalog's language (default: its header's Language)")
    po.add_argument("--overwrite", action="store_true", help="translate entries that already have a translation too")
    po.add_argument("--beams", type=int, help="beam size (default: the model's generation config)")
    po.add_argument("--batch-size", type=int, default=64)
    po.add_argument("--max-new-tokens", type=int, default=128)
    po.add_argument("--no-protect", action="store_true",
                    help="write the best hypotheses as they are (for comparison: layout and directives break)")
    po.set_defaults(func=_translate_po)

    evaluate = sub.add_parser("evaluate", help="BLEU and chrF on a corpus split or files, as a JSON report")
    evaluate.add_argument("model", help="a trained model folder")
    evaluate.add_argument("--data", default="gettext:de")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--source-file")
    evaluate.add_argument("--reference-file")
    evaluate.add_argument("--limit", type=int, help="only the first N sentences")
    evaluate.add_argument("--beams", type=int, help="beam size (default: the model's generation config)")
    evaluate.add_argument("--length-penalty", type=float, help="beam length penalty (default: the model's generation config)")
    evaluate.add_argument("--max-new-tokens", type=int, default=128)
    evaluate.add_argument("--mbr", type=int, metavar="N",
                           help="minimum Bayes risk: choose among at least N beam hypotheses the one with the highest "
                                "expected chrF against the others (default: off, the best-scoring hypothesis)")
    evaluate.add_argument("--coverage-penalty", type=float,
                          help="Wu et al.'s coverage penalty beta: beam search's hypotheses re-ranked by how "
                               "fully their copy attention covers the source (copy models; default: off)")
    evaluate.add_argument("--report", help="write the JSON report here")
    evaluate.add_argument("--no-protect", action="store_true",
                          help="score the best hypotheses as they are, even for a gettext model (as training does)")
    evaluate.set_defaults(func=_evaluate)

    distill = sub.add_parser("distill", help="translate a corpus's training split with a trained model (for a student)",
                             description=_distill.__doc__)
    distill.add_argument("model", help="the teacher: a trained model folder")
    distill.add_argument("--data", default="gettext:de", help="corpus spec, as for train (default: %(default)s)")
    distill.add_argument("--output-dir", required=True, help="the distilled corpus folder")
    distill.add_argument("--beams", type=int, help="beam size (default: the teacher's generation config)")
    distill.add_argument("--batch-size", type=int, default=64)
    distill.add_argument("--max-new-tokens", type=int, default=128)
    distill.add_argument("--max-train-samples", type=int, help="only the first N training pairs")
    distill.add_argument("--chunk-size", type=int, default=2000, help="pairs written per resumable chunk")
    distill.set_defaults(func=_distill)

    average = sub.add_parser("average", help="average the last checkpoints of a run into one model folder",
                             description=_average.__doc__)
    average.add_argument("run", help="a training run folder (its checkpoints/checkpoint-<step> folders)")
    average.add_argument("--output-dir", required=True, help="the averaged model folder (must not exist)")
    choice = average.add_mutually_exclusive_group()
    choice.add_argument("--last", type=int, default=2, help="average the last N checkpoints (default: %(default)s)")
    choice.add_argument("--checkpoints", nargs="+", help="average these checkpoint folders instead")
    average.set_defaults(func=_average)

    push = sub.add_parser("push", help="upload a trained folder to the Hugging Face Hub", description=_push.__doc__)
    push.add_argument("model")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--strip-local-paths", action="store_true",
                      help="rewrite the local paths of the files to upload in place (a run folder of an earlier "
                           "version has them) instead of refusing to upload them")
    push.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as error:
        logger.error("%s", error)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
