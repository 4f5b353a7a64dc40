"""Text datasets for LLM audits, read through Hugging Face ``datasets``.

Sources (:func:`load_text_dataset`): a ``.jsonl`` / ``.json``, ``.csv`` or ``.parquet`` file, a
directory written by ``Dataset.save_to_disk`` (or a folder of such data files), or a hub dataset name
when the hub is reachable (``HF_DATASETS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` turn that off and an
unknown name is then an error naming it).

Labels. Every query row carries a label in ``label_column`` (default ``"label"``), one of three
values (case-insensitive; the aliases map to the canonical name on the left):

=============  =======================================================  =========================
canonical      meaning                                                  aliases
=============  =======================================================  =========================
``member``     trained on by the original model and still meant to be   retained, retain, in
               (a *retained* member)
``unlearned``  trained on by the original model, then unlearned         forget, forgotten
``nonmember``  never trained on                                         non-member, non_member,
                                                                        heldout, held-out, holdout,
                                                                        out
=============  =======================================================  =========================

Numbers are refused unless a ``label_map`` says what they mean: the IAM fork writes 1 = retained,
0 = unlearned while MIA benchmarks write 1 = member, 0 = non-member, so a bare 0 is ambiguous. Pass
e.g. ``label_map={1: "member", 0: "unlearned"}``.

Chunking (``chunk="words"`` or ``"tokens"``) cuts every row into consecutive windows of ``window``
whitespace-separated words (the IAM fork's 256-word MUSE chunks) or ``window`` tokens of a given
tokenizer (decoded back to text, so every model still scores its own tokenisation of the same
characters). All chunks are kept, including a shorter last one; a chunk's id is ``<row id>#<k>`` and
it inherits the row's label.

A population set for RMIA (:func:`load_population`) is the same without labels.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from expunge.errors import DataError

LABELS = ("member", "unlearned", "nonmember")
LABEL_ALIASES: dict[str, str] = {
    "member": "member", "retained": "member", "retain": "member", "in": "member",
    "unlearned": "unlearned", "forget": "unlearned", "forgotten": "unlearned",
    "nonmember": "nonmember", "non-member": "nonmember", "non_member": "nonmember", "heldout": "nonmember",
    "held-out": "nonmember", "holdout": "nonmember", "out": "nonmember",
}
Chunk = Literal["none", "words", "tokens"]


@dataclass(frozen=True, eq=False)
class TextSet:
    """Texts with unique string ids and (for query sets) canonical labels, in a fixed order."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray | None = None  # str array of LABELS values, or None (population sets)
    source: str = "memory"
    _hash: list = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def hash(self) -> str:
        """sha256 over ids and texts in order (labels excluded: they do not change log-probs)."""
        if not self._hash:
            h = hashlib.sha256()
            for i, t in zip(self.ids, self.texts):
                h.update(i.encode())
                h.update(b"\x00")
                h.update(t.encode())
                h.update(b"\x01")
            self._hash.append(h.hexdigest())
        return self._hash[0]

    def mask(self, *labels: str) -> np.ndarray:
        if self.labels is None:
            raise DataError(f"dataset {self.source} has no labels")
        return np.isin(self.labels, labels)

    def counts(self) -> dict[str, int]:
        if self.labels is None:
            return {}
        return {lab: int((self.labels == lab).sum()) for lab in LABELS}

    def subset(self, index: Iterable[int]) -> "TextSet":
        idx = list(index)
        labels = None if self.labels is None else self.labels[idx]
        return TextSet(tuple(self.ids[i] for i in idx), tuple(self.texts[i] for i in idx), labels, self.source)

    def lowercased(self) -> "TextSet":
        return TextSet(self.ids, tuple(t.lower() for t in self.texts), self.labels, f"{self.source} (lowercased)")


def canonical_label(value: Any, label_map: Mapping[Any, str] | None, column: str, source: str) -> str:
    if label_map is not None:
        for key in (value, str(value)):
            if key in label_map:
                value = label_map[key]
                break
    if isinstance(value, (bool, int, float, np.integer, np.floating)) and not isinstance(value, str):
        raise DataError(f"dataset {source}: label column {column!r} holds the number {value!r}; numeric labels "
                        "are ambiguous (1 = retained or 1 = member?), use member/retained, unlearned/forget, "
                        "nonmember, or pass a label map such as 1=member,0=unlearned")
    key = str(value).strip().lower()
    if key not in LABEL_ALIASES:
        raise DataError(f"dataset {source}: unknown label {value!r} in column {column!r} "
                        f"(accepted: {', '.join(sorted(LABEL_ALIASES))})")
    return LABEL_ALIASES[key]


def text_set(texts: Sequence[str], labels: Sequence[Any] | None = None, ids: Sequence[Any] | None = None,
             source: str = "memory", label_map: Mapping[Any, str] | None = None,
             text_column: str = "text", label_column: str = "label") -> TextSet:
    """Validate and build a :class:`TextSet` (every check of :func:`load_text_dataset`)."""
    texts = list(texts)
    if not texts:
        raise DataError(f"dataset {source} has no rows")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"dataset {source}: empty text in column {text_column!r} at row {bad[0]}{more}")
    ids = [str(i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(texts):
        raise DataError(f"dataset {source}: {len(ids)} ids for {len(texts)} texts")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"dataset {source}: sample id {dup!r} is not unique")
    lab = None
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(texts):
            raise DataError(f"dataset {source}: {len(labels)} labels for {len(texts)} texts")
        lab = np.array([canonical_label(v, label_map, label_column, source) for v in labels])
    return TextSet(tuple(ids), tuple(texts), lab, source)


def _offline() -> bool:
    return any(os.environ.get(v) == "1" for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_hf(path: str, split: str | None):
    """A Hugging Face ``Dataset`` from a file, a saved dataset directory, a data folder or the hub."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(path).expanduser()
    try:
        if p.is_file():
            fmt = _FORMATS.get(p.suffix.lower())
            if fmt is None:
                raise DataError(f"dataset {path}: unsupported file type {p.suffix!r} "
                                f"(use {', '.join(sorted(_FORMATS))} or a dataset directory)")
            return datasets.load_dataset(fmt, data_files=str(p), split="train")
        if p.is_dir():
            if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists():
                ds = datasets.load_from_disk(str(p))
            else:
                ds = datasets.load_dataset(str(p))
        elif path.startswith((".", "/", "~")) or _offline() or p.suffix.lower() in _FORMATS:
            raise DataError(f"dataset {path}: no such file or directory"
                            + (" (and the hub is offline)" if _offline() else ""))
        else:
            ds = datasets.load_dataset(path)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable input
        bad = _bad_jsonl_line(p) if p.is_file() and p.suffix.lower() == ".jsonl" else None
        if bad is not None:
            raise DataError(f"dataset {path}: line {bad[0]} is not a JSON object ({bad[1]})") from None
        raise DataError(f"dataset {path} could not be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if isinstance(ds, (datasets.DatasetDict, dict)):
        names = list(ds)
        if split is None:
            if len(names) != 1 and "train" not in names:
                raise DataError(f"dataset {path} has splits {', '.join(names)}; choose one with split=")
            split = "train" if "train" in names else names[0]
        if split not in names:
            raise DataError(f"dataset {path} has no split {split!r} (has: {', '.join(names)})")
        ds = ds[split]
    return ds


def _bad_jsonl_line(p: Path) -> tuple[int, str] | None:
    """The first line of a JSON-lines file that is not a JSON object: (line number, why); the
    line's text is not repeated (it may be long or private)."""
    import json

    with open(p, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                return number, f"{type(exc).__name__} at column {getattr(exc, 'colno', '?')}"
            if not isinstance(obj, dict):
                return number, f"a JSON {type(obj).__name__}, not an object"
    return None


def _chunk(ts: TextSet, unit: Chunk, window: int, tokenizer: Any) -> TextSet:
    if unit == "none":
        return ts
    if window < 1:
        raise DataError(f"chunk window must be >= 1, got {window}")
    if unit == "tokens" and tokenizer is None:
        raise DataError("token chunking needs a tokenizer (the target model's)")
    ids, texts, labels = [], [], []
    for k, (i, t) in enumerate(zip(ts.ids, ts.texts)):
        if unit == "words":
            words = t.split()
            pieces = [" ".join(words[s:s + window]) for s in range(0, len(words), window)]
        elif unit == "tokens":
            from expunge.llm.models import encode_texts

            toks = encode_texts(tokenizer, [t], add_special_tokens=False)[0]
            pieces = [tokenizer.decode(toks[s:s + window]) for s in range(0, len(toks), window)]
        else:
            raise DataError(f"unknown chunk unit {unit!r} (use none, words or tokens)")
        pieces = [p for p in pieces if p.strip()]
        for j, piece in enumerate(pieces):
            ids.append(f"{i}#{j}")
            texts.append(piece)
            if ts.labels is not None:
                labels.append(ts.labels[k])
    return TextSet(tuple(ids), tuple(texts), None if ts.labels is None else np.array(labels), ts.source)


def chunk_text_set(ts: TextSet, unit: Chunk, window: int, tokenizer: Any = None) -> TextSet:
    """Cut every row of ``ts`` into windows of ``window`` words or tokens (module docstring, "Chunking");
    ``unit="none"`` returns ``ts`` unchanged."""
    return _chunk(ts, unit, window, tokenizer)


def load_text_dataset(path: str, *, text_column: str = "text", label_column: str | None = "label",
                      id_column: str | None = None, split: str | None = None,
                      label_map: Mapping[Any, str] | None = None, chunk: Chunk = "none", window: int = 256,
                      tokenizer: Any = None, max_samples: int | None = None) -> TextSet:
    """Read a labelled (``label_column`` set) or unlabelled (``None``) text dataset; see the module
    docstring for sources, labels and chunking. Raises :class:`~expunge.errors.DataError` for a
    missing file, a missing text / label / id column (named), an empty text (row named), an unknown
    label and duplicate ids."""
    ds = read_hf(path, split)
    cols = list(ds.column_names)
    for role, col in (("text", text_column), ("label", label_column), ("id", id_column)):
        if col is not None and col not in cols:
            raise DataError(f"dataset {path} has no {role} column {col!r} (columns: {', '.join(cols)})")
    n = len(ds) if max_samples is None else min(len(ds), max_samples)
    ds = ds.select(range(n)) if n < len(ds) else ds
    texts = ds[text_column]
    labels = ds[label_column] if label_column is not None else None
    ids = ds[id_column] if id_column is not None else None
    ts = text_set(texts, labels, ids, source=path, label_map=label_map, text_column=text_column,
                  label_column=label_column or "label")
    return _chunk(ts, chunk, window, tokenizer)


def load_population(path: str, *, text_column: str = "text", split: str | None = None, chunk: Chunk = "none",
                    window: int = 256, tokenizer: Any = None, max_samples: int | None = None) -> TextSet:
    """An unlabelled population set (RMIA's z samples: text from the query distribution that no audited
    model trained on)."""
    return load_text_dataset(path, text_column=text_column, label_column=None, split=split, chunk=chunk,
                             window=window, tokenizer=tokenizer, max_samples=max_samples)


def parse_label_map(spec: str | None) -> dict[str, str] | None:
    """``"1=member,0=unlearned"`` -> ``{"1": "member", "0": "unlearned"}`` (CLI form)."""
    if not spec:
        return None
    out = {}
    for item in spec.split(","):
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise DataError(f"label map item {item!r} must look like VALUE=LABEL")
        if v.strip().lower() not in LABEL_ALIASES:
            raise DataError(f"label map item {item!r}: {v!r} is not a label (accepted: {', '.join(LABELS)})")
        out[k.strip()] = v.strip()
    return out
