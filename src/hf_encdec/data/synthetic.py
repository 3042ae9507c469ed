"""Built-in toy sequence-to-sequence tasks that need no corpus.

Each task maps a random sequence of symbols to a deterministic function of it; sequences are written as
space-separated tokens (``"7 3 9"``) so that any tokenizer, even a word-level one, sees one symbol per word:

========== ========================================== ===============================
task       target                                     example
========== ========================================== ===============================
copy       the source                                 ``7 3 9`` -> ``7 3 9``
reverse    the source backwards                       ``7 3 9`` -> ``9 3 7``
sort       the symbols in vocabulary order            ``7 3 9`` -> ``3 7 9``
shift      each symbol replaced by the next one       ``7 3 9`` -> ``8 4 0`` (digits)
           in the vocabulary, wrapping around
duplicate  the source written twice                   ``7 3 9`` -> ``7 3 9 7 3 9``
========== ========================================== ===============================

Copy and reverse are the classic probes of Sutskever et al. 2014 (arXiv 1409.3215) and of attention (Bahdanau et
al. 2015, arXiv 1409.0473); reversal is the learning test of this project.

Splits are disjoint: no source sequence occurs in two splits. The test split is drawn first, then validation, then
train, so the test set of a given seed does not change when ``train_size`` changes. Rows come in the order drawn,
so the first rows of a split are a random sample of it.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable, Sequence

import datasets

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SYMBOLS", "SYNTHETIC_TASKS", "load_synthetic", "make_vocab", "synthetic_target"]

DEFAULT_SYMBOLS: str = string.digits + string.ascii_lowercase + string.ascii_uppercase
"""The symbols an integer vocabulary size draws from, in order: ``0-9``, then ``a-z``, then ``A-Z`` (62 at most)."""


def _copy(tokens: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """Return the tokens unchanged."""
    return list(tokens)


def _reverse(tokens: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """Return the tokens in reverse order."""
    return list(reversed(tokens))


def _sort(tokens: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """Return the tokens sorted by their position in the vocabulary (not by string order: ``"10" < "9"``)."""
    rank = {symbol: index for index, symbol in enumerate(vocab)}
    return sorted(tokens, key=rank.__getitem__)


def _shift(tokens: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """Replace each token with the next symbol of the vocabulary, the last one wrapping to the first."""
    rank = {symbol: index for index, symbol in enumerate(vocab)}
    return [vocab[(rank[token] + 1) % len(vocab)] for token in tokens]


def _duplicate(tokens: Sequence[str], vocab: Sequence[str]) -> list[str]:
    """Return the tokens written twice in a row."""
    return list(tokens) + list(tokens)


SYNTHETIC_TASKS: dict[str, Callable[[Sequence[str], Sequence[str]], list[str]]] = {
    "copy": _copy,
    "reverse": _reverse,
    "sort": _sort,
    "shift": _shift,
    "duplicate": _duplicate,
}
"""Task name -> function ``(source tokens, vocabulary) -> target tokens``."""


def make_vocab(vocab: int | Sequence[str]) -> list[str]:
    """Resolve a vocabulary argument to a list of distinct symbols.

    Args:
        vocab: A size (the first ``vocab`` symbols of :data:`DEFAULT_SYMBOLS`) or explicit symbols, which must be
            distinct, non-empty and free of whitespace (tokens are joined with spaces).

    Returns:
        The symbols, in vocabulary order.

    Raises:
        ValueError: If the size is outside 2..62 or a symbol is empty, repeated or contains whitespace.
    """
    if isinstance(vocab, int):
        if not 2 <= vocab <= len(DEFAULT_SYMBOLS):
            raise ValueError(f"vocab size must be between 2 and {len(DEFAULT_SYMBOLS)}, got {vocab}")
        return list(DEFAULT_SYMBOLS[:vocab])
    symbols = list(vocab)
    if len(symbols) < 2:
        raise ValueError(f"vocab needs at least 2 symbols, got {symbols!r}")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"vocab symbols must be distinct, got {symbols!r}")
    for symbol in symbols:
        if not symbol or any(character.isspace() for character in symbol):
            raise ValueError(f"vocab symbols must be non-empty and contain no whitespace, got {symbol!r}")
    return symbols


def synthetic_target(task: str, source: str, vocab: int | Sequence[str] = 10) -> str:
    """Compute the target of ``task`` for one space-separated source string.

    Args:
        task: One of :data:`SYNTHETIC_TASKS`.
        source: Space-separated symbols, e.g. ``"7 3 9"``.
        vocab: The vocabulary the source was drawn from (needed by ``sort`` and ``shift``).

    Returns:
        The space-separated target, e.g. ``"9 3 7"`` for ``reverse``.

    Raises:
        ValueError: If ``task`` is unknown.
    """
    function = _task_function(task)
    return " ".join(function(source.split(" "), make_vocab(vocab)))


def _task_function(task: str) -> Callable[[Sequence[str], Sequence[str]], list[str]]:
    """Look up a task, raising a ``ValueError`` that lists the valid names."""
    try:
        return SYNTHETIC_TASKS[task]
    except KeyError:
        raise ValueError(
            f"Unknown synthetic task {task!r}; valid tasks: {', '.join(sorted(SYNTHETIC_TASKS))}"
        ) from None


def load_synthetic(
    name: str,
    *,
    vocab: int | Sequence[str] = 10,
    min_length: int = 3,
    max_length: int = 10,
    train_size: int = 5000,
    validation_size: int = 500,
    test_size: int = 500,
    seed: int = 0,
) -> datasets.DatasetDict:
    """Generate a toy seq2seq task as a ``DatasetDict``.

    Lengths are drawn uniformly from ``min_length..max_length`` and symbols uniformly from the vocabulary; a
    sequence already drawn is drawn again, so all ``train_size + validation_size + test_size`` sources are distinct.

    Args:
        name: Task name: ``copy``, ``reverse``, ``sort``, ``shift`` or ``duplicate``.
        vocab: Vocabulary size (symbols ``0-9``, then ``a-z``, ``A-Z``) or explicit symbols.
        min_length: Shortest source, in symbols.
        max_length: Longest source, in symbols.
        train_size: Examples in ``train``.
        validation_size: Examples in ``validation``.
        test_size: Examples in ``test``.
        seed: Seed of the generator; the same arguments always give the same data.

    Returns:
        A ``DatasetDict`` with splits ``train``, ``validation``, ``test`` and string columns ``source``, ``target``.

    Raises:
        ValueError: If the task is unknown, a size or length is invalid, or there are fewer distinct sequences of
            the allowed lengths than examples requested.
    """
    function = _task_function(name)
    symbols = make_vocab(vocab)
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got min_length={min_length}, max_length={max_length}")
    sizes = {"test": test_size, "validation": validation_size, "train": train_size}
    for split, size in sizes.items():
        if size < 0:
            raise ValueError(f"{split}_size must be >= 0, got {size}")
    total = sum(sizes.values())
    if total == 0:
        raise ValueError("train_size, validation_size and test_size are all 0: nothing to generate")
    # Only some lengths may have enough distinct sequences; count the whole space before sampling.
    available = sum(len(symbols) ** length for length in range(min_length, max_length + 1))
    if total > available // 2:
        raise ValueError(
            f"{total} distinct sequences requested but only {available} exist for {len(symbols)} symbols and "
            f"lengths {min_length}..{max_length}; sampling would need more than half of them. Use a larger vocab or "
            "max_length, or smaller sizes"
        )

    generator = random.Random(f"hf_encdec.synthetic:{seed}")  # str seeds hash with SHA-512: same on every run
    lengths = range(min_length, max_length + 1)
    seen: set[tuple[str, ...]] = set()
    splits: dict[str, datasets.Dataset] = {}
    for split, size in sizes.items():  # test first: it stays fixed when train_size changes
        sources: list[str] = []
        targets: list[str] = []
        attempts = 0
        while len(sources) < size:
            attempts += 1
            if attempts > 100 * size + 1000:
                raise ValueError(
                    f"could not draw {size} distinct {split} sequences of lengths {min_length}..{max_length}: the "
                    "short lengths are exhausted; raise min_length or the vocab size"
                )
            tokens = tuple(generator.choice(symbols) for _ in range(generator.choice(lengths)))
            if tokens in seen:
                continue
            seen.add(tokens)
            sources.append(" ".join(tokens))
            targets.append(" ".join(function(tokens, symbols)))
        splits[split] = datasets.Dataset.from_dict(
            {"source": sources, "target": targets},
            features=datasets.Features({"source": datasets.Value("string"), "target": datasets.Value("string")}),
        )
    logger.info(
        "synthetic task %s: %d symbols, lengths %d..%d, train=%d validation=%d test=%d, seed %d",
        name,
        len(symbols),
        min_length,
        max_length,
        train_size,
        validation_size,
        test_size,
        seed,
    )
    return datasets.DatasetDict({split: splits[split] for split in ("train", "validation", "test")})
