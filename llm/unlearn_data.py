"""The forget, retain, held-out and population sets of an unlearning run, read from files.

Every set is read through :func:`expunge.llm.data.read_hf` (JSON lines, CSV, parquet, a saved
``datasets`` directory) in one of two formats:

* **text**: a ``text_column``; every token of a text is a training target and is scored;
* **prompt/answer** (the TOFU convention): a ``question_column`` and an ``answer_column``; training
  puts the loss on the answer's tokens only (:func:`expunge.llm.unlearn.make_batch`) and the audit
  scores the answer's tokens given the prompt (:func:`expunge.llm.qa_scoring.answer_token_scores`).

``format="auto"`` picks prompt/answer when the file has the question column, else text. Every set of
one run must have the same format: the attacks compare per-sample scores across sets, and a text's
full-sequence loss is not on the scale of an answer's.

Checks (one-line :class:`~expunge.errors.DataError`, before anything is trained): a missing or empty
file, a missing column (named, with the columns the file has), an empty text, duplicate ids, sets of
different formats, and an item that is in two of forget / retain / held-out (a forgotten item
cannot also be kept, and a held-out item must be unseen).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from expunge.errors import DataError
from expunge.llm.data import TextSet, text_set

Format = Literal["auto", "text", "qa"]


@dataclass(frozen=True)
class UnlearnSplit:
    """One set: ``texts`` are the texts (text format) or the answers (prompt/answer format, with
    ``prompts``); ``ids`` are unique strings."""

    role: str
    source: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    prompts: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def qa(self) -> bool:
        return self.prompts is not None

    @property
    def format(self) -> str:
        return "qa" if self.qa else "text"

    def items(self) -> list[Any]:
        """What :func:`expunge.llm.unlearn.unlearn_lm` trains on: texts, or (prompt, answer) pairs."""
        return list(self.texts) if self.prompts is None else list(zip(self.prompts, self.texts))

    def head(self, n: int | None) -> "UnlearnSplit":
        """The first ``n`` items (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return UnlearnSplit(self.role, self.source, self.ids[:n], self.texts[:n],
                            None if self.prompts is None else self.prompts[:n])

    def scoring_set(self) -> Any:
        """The cache's data object: a :class:`~expunge.llm.data.TextSet`, or an
        :class:`~expunge.llm.qa_scoring.AnswerSet` for prompt/answer items."""
        if self.prompts is None:
            return TextSet(self.ids, self.texts, None, self.source)
        from expunge.llm.qa_scoring import AnswerSet

        return AnswerSet(self.ids, self.prompts, self.texts)

    @property
    def hash(self) -> str:
        """sha256 over the format, ids and items in order (what a checkpoint's identity records)."""
        h = hashlib.sha256(self.format.encode())
        for k, i in enumerate(self.ids):
            for part in (i, self.texts[k], "" if self.prompts is None else self.prompts[k]):
                h.update(part.encode())
                h.update(b"\x00")
            h.update(b"\x01")
        return h.hexdigest()


def _columns_and_rows(path: str, split: str | None, role: str) -> Any:
    from expunge.llm.data import read_hf

    p = Path(path).expanduser()
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(1 << 16)
        if not head.strip():  # datasets' own message for an empty file is "StopIteration"
            raise DataError(f"{role} set: dataset {path} has no rows (the file is empty)")
    try:
        return read_hf(path, split)
    except DataError as exc:
        raise DataError(f"{role} set: {exc}") from None


def load_split(path: str, role: str, *, fmt: Format = "auto", text_column: str = "text",
               question_column: str = "question", answer_column: str = "answer", id_column: str | None = None,
               split: str | None = None, max_samples: int | None = None) -> UnlearnSplit:
    """Read one set (module docstring); ``role`` (forget, retain, held-out, population) names it in
    every error."""
    ds = _columns_and_rows(path, split, role)
    cols = list(ds.column_names)
    have = ", ".join(cols)
    if fmt == "auto":
        fmt = "qa" if question_column in cols else "text"
        if fmt == "text" and text_column not in cols:
            raise DataError(f"{role} set: dataset {path} has neither a text column {text_column!r} nor a question "
                            f"column {question_column!r} (columns: {have})")
    if fmt == "qa":
        if question_column not in cols:
            raise DataError(f"{role} set: prompt/answer dataset {path} has no question column {question_column!r} "
                            f"(columns: {have})")
        if answer_column not in cols:
            raise DataError(f"{role} set: prompt/answer dataset {path} has no answer column {answer_column!r} "
                            f"(columns: {have}); set answer_column=, or give plain texts")
    elif text_column not in cols:
        raise DataError(f"{role} set: dataset {path} has no text column {text_column!r} (columns: {have})")
    if id_column is not None and id_column not in cols:
        raise DataError(f"{role} set: dataset {path} has no id column {id_column!r} (columns: {have})")
    n = len(ds) if max_samples is None else min(len(ds), max_samples)
    if n < len(ds):
        ds = ds.select(range(n))
    ids = ds[id_column] if id_column is not None else None
    source = f"{path} ({role})"
    try:
        if fmt == "qa":
            prompts = text_set(ds[question_column], ids=ids, source=source, text_column=question_column)
            answers = text_set(ds[answer_column], ids=ids, source=source, text_column=answer_column)
            return UnlearnSplit(role, path, prompts.ids, answers.texts, prompts.texts)
        texts = text_set(ds[text_column], ids=ids, source=source, text_column=text_column)
    except DataError as exc:
        raise DataError(f"{role} set: {exc}") from None
    return UnlearnSplit(role, path, texts.ids, texts.texts)


def _key(split: UnlearnSplit, k: int) -> tuple[str, ...]:
    # whitespace at the ends does not make a different item (a copy-pasted duplicate often differs there)
    if split.prompts is None:
        return (split.texts[k].strip(),)
    return (split.prompts[k].strip(), split.texts[k].strip())


def check_splits(forget: UnlearnSplit, retain: UnlearnSplit | None, others: Sequence[UnlearnSplit] = ()) -> None:
    """DataError unless every set has the forget set's format and forget, retain and each of ``others``
    (the held-out set) share no item; ids are named, texts are not repeated (they may be private)."""
    sets = [s for s in (retain, *others) if s is not None]
    for s in sets:
        if s.format != forget.format:
            what = {"qa": "prompt/answer data", "text": "plain text"}
            raise DataError(f"the forget set is {what[forget.format]} but the {s.role} set is {what[s.format]}; "
                            "every set of a run must have the same format")
    pairs = [(forget, retain)] if retain is not None else []
    pairs += [(a, o) for o in others for a in (forget, retain) if a is not None]
    for a, b in pairs:
        seen = {_key(a, k): a.ids[k] for k in range(len(a))}
        both = [(seen[_key(b, k)], b.ids[k]) for k in range(len(b)) if _key(b, k) in seen]
        if both:
            why = ("an item cannot be both forgotten and kept" if b.role == "retain"
                   else f"a {b.role} item must be one the original model never trained on")
            raise DataError(f"the {a.role} and {b.role} sets overlap: {len(both)} item(s) in both (e.g. {a.role} id "
                            f"{both[0][0]!r} = {b.role} id {both[0][1]!r}); {why}")
