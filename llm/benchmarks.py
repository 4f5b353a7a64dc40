"""Loaders for LLM-unlearning benchmark files: TOFU's QA format and MUSE-style plain text.

**TOFU** (Maini et al. 2024, arXiv 2401.06121) ships each split as JSON lines (``.json`` or
``.jsonl``; a JSON array is read too), one object per question:

==================== =============================================== ==========
field                content                                         required
==================== =============================================== ==========
``question``         the question                                    yes
``answer``           the reference answer                            yes
``paraphrased_answer`` the answer reworded (truth ratio)             with ``perturbed``
``perturbed_answer`` a list of wrong answers of the same form        with ``perturbed``
                     (a single string counts as a list of one)
==================== =============================================== ==========

Other fields are ignored. :func:`load_tofu_qa` returns :class:`~expunge.llm.tofu.QAPair` objects, the
type the generated benchmark (:mod:`expunge.llm.tofu`) and the QA scorer
(:func:`expunge.llm.qa_scoring.score_qa_split`) use.

**MUSE** (Shi et al. 2024, arXiv 2407.06460) keeps its corpora (forget, retain, holdout) as raw
text. :func:`load_plain_texts` reads a folder of ``.txt`` files (one document per file) or one
``.txt`` file holding many documents (separated by blank lines, or one per line), optionally labelled
and cut into word or token windows (the IAM fork's 256-word MUSE chunks); :func:`load_muse_texts`
combines several such files into one labelled :class:`~expunge.llm.data.TextSet` for an audit.

Every problem is a one-line :class:`~expunge.errors.DataError` naming the file and, where it applies,
the line and the field (the offending text itself is not repeated: it may be long or private).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

from expunge.errors import DataError
from expunge.llm.data import Chunk, TextSet, canonical_label, chunk_text_set, text_set
from expunge.llm.tofu import QAPair

Separator = Literal["paragraph", "line", "file"]


# --- TOFU -----------------------------------------------------------------------------------
def _read_text(p: Path, what: str) -> str:
    """The file's text as UTF-8 (a BOM is dropped); a byte that is not UTF-8 is named by its line."""
    if not p.is_file():
        raise DataError(f"{what} {p}: no such file" + (" (a directory)" if p.is_dir() else ""))
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{what} {p}: line {line} is not UTF-8 text") from None


def _json_records(p: Path, text: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every record: the elements of a top-level JSON array, or one JSON value
    per non-empty line (JSON lines)."""
    dec = json.JSONDecoder()
    body = text.lstrip()
    if not body.startswith("["):
        # split on "\n" only: str.splitlines would also cut at U+2028, which a JSON string may hold raw
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise DataError(f"dataset {p}: line {number} is not valid JSON "
                                    f"({type(exc).__name__} at column {getattr(exc, 'colno', '?')})") from None
        return
    i = len(text) - len(body) + 1

    def skip(j: int) -> int:
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        return j

    def line_of(j: int) -> int:
        return text.count("\n", 0, j) + 1

    i = skip(i)
    if i < len(text) and text[i] == "]":
        return
    while True:
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError as exc:
            raise DataError(f"dataset {p}: line {getattr(exc, 'lineno', line_of(i))} is not valid JSON "
                            f"({type(exc).__name__} at column {getattr(exc, 'colno', '?')})") from None
        yield line_of(i), obj
        i = skip(end)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
        elif i < len(text) and text[i] == "]":
            return
        else:
            raise DataError(f"dataset {p}: line {line_of(i)}: expected ',' or ']' in the JSON array")


def _text_field(p: Path, number: int, row: dict, name: str) -> str:
    if name not in row:
        fields = ", ".join(map(str, row)) or "none"
        raise DataError(f"dataset {p}: line {number} has no field {name!r} (fields: {fields})")
    v = row[name]
    if not isinstance(v, str):
        raise DataError(f"dataset {p}: line {number}: field {name!r} must be a string, not {type(v).__name__}")
    if not v.strip():
        raise DataError(f"dataset {p}: line {number}: field {name!r} is empty")
    return v


def _answers_field(p: Path, number: int, row: dict, name: str) -> tuple[str, ...]:
    v = row[name]
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise DataError(f"dataset {p}: line {number}: field {name!r} must be a non-empty list of non-empty strings")
    return tuple(items)


def load_tofu_qa(path: str, *, perturbed: bool | None = None, id_field: str | None = None,
                 max_rows: int | None = None) -> tuple[QAPair, ...]:
    """QA pairs from a TOFU-format file (module docstring).

    ``perturbed``: True requires ``paraphrased_answer`` and ``perturbed_answer`` on every row (truth
    ratio), False ignores them, None (default) reads them when the first row has them and then
    requires them on every row. Every row must have the same number of perturbed answers (the truth
    ratio averages over them). ``id_field`` names a field holding unique ids (default: the row's
    0-based position). Raises :class:`~expunge.errors.DataError` naming the line and field of the
    first problem."""
    p = Path(path).expanduser()
    text = _read_text(p, "dataset")
    pairs: list[QAPair] = []
    seen: dict[str, int] = {}
    first: tuple[int, int] | None = None  # (line, number of perturbed answers) of the first row
    for number, row in _json_records(p, text):
        if max_rows is not None and len(pairs) >= max_rows:
            break
        if not isinstance(row, dict):
            raise DataError(f"dataset {p}: line {number} is a JSON {type(row).__name__}, not an object")
        question = _text_field(p, number, row, "question")
        answer = _text_field(p, number, row, "answer")
        if perturbed is None:
            perturbed = "paraphrased_answer" in row or "perturbed_answer" in row
        para, pert = None, ()
        if perturbed:
            para = _text_field(p, number, row, "paraphrased_answer")
            if "perturbed_answer" not in row:
                raise DataError(f"dataset {p}: line {number} has no field 'perturbed_answer' "
                                "(needed with paraphrased answers for the truth ratio)")
            pert = _answers_field(p, number, row, "perturbed_answer")
            if first is None:
                first = (number, len(pert))
            elif len(pert) != first[1]:
                raise DataError(f"dataset {p}: line {number}: field 'perturbed_answer' has {len(pert)} answers, "
                                f"line {first[0]} has {first[1]} (every question needs the same number)")
        if id_field is not None:
            if id_field not in row:
                raise DataError(f"dataset {p}: line {number} has no id field {id_field!r}")
            qid = str(row[id_field])
        else:
            qid = str(len(pairs))
        if qid in seen:
            raise DataError(f"dataset {p}: line {number}: id {qid!r} repeats line {seen[qid]}")
        seen[qid] = number
        pairs.append(QAPair(qid, question, answer, para, pert))
    if not pairs:
        raise DataError(f"dataset {p} has no rows")
    return tuple(pairs)


# --- MUSE-style plain text ------------------------------------------------------------------
def _split_docs(text: str, separator: Separator) -> list[str]:
    if separator == "file":
        docs = [text]
    elif separator == "line":
        docs = text.splitlines()
    elif separator == "paragraph":
        docs, cur = [], []
        for line in text.splitlines():
            if line.strip():
                cur.append(line)
            elif cur:
                docs.append("\n".join(cur))
                cur = []
        if cur:
            docs.append("\n".join(cur))
    else:
        raise DataError(f"unknown document separator {separator!r} (use paragraph, line or file)")
    return [d.strip() for d in docs if d.strip()]


def load_plain_texts(path: str, *, separator: Separator | None = None, label: str | None = None,
                     chunk: Chunk = "none", window: int = 256, tokenizer: Any = None,
                     suffix: str = ".txt") -> TextSet:
    """Documents from plain text: a folder of ``*<suffix>`` files (sorted by name, not recursive) or
    one file.

    ``separator``: how a file splits into documents, ``"file"`` (the whole file), ``"paragraph"``
    (blank lines between documents) or ``"line"`` (one per line); the default is ``"file"`` for a
    folder and ``"paragraph"`` for a single file. Ids: ``<k>`` for the k-th document of a single file;
    ``<file stem>`` (or ``<file stem>/<k>`` when a file holds several) in a folder. ``label`` (e.g.
    ``"forget"``, any alias of :mod:`expunge.llm.data`) labels every document; None leaves them
    unlabelled (a population set). ``chunk`` / ``window`` / ``tokenizer`` cut documents into windows
    (:func:`expunge.llm.data.chunk_text_set`). An empty file in a folder, a folder without such files
    and a byte that is not UTF-8 (line named) are :class:`~expunge.errors.DataError`."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(suffix))
        if not files:
            raise DataError(f"dataset {p}: no {suffix} files in the folder")
        sep = separator or "file"
        ids, texts = [], []
        for f in files:
            docs = _split_docs(_read_text(f, "dataset"), sep)
            if not docs:
                raise DataError(f"dataset {f}: the file has no text")
            stem = f.name[: -len(suffix)] if suffix else f.name
            ids += [stem] if len(docs) == 1 else [f"{stem}/{k}" for k in range(len(docs))]
            texts += docs
    else:
        docs = _split_docs(_read_text(p, "dataset"), separator or "paragraph")
        if not docs:
            raise DataError(f"dataset {p}: the file has no text")
        ids, texts = [str(k) for k in range(len(docs))], docs
    labels = None if label is None else [canonical_label(label, None, "label", str(p))] * len(texts)
    return chunk_text_set(text_set(texts, labels, ids, source=str(p)), chunk, window, tokenizer)


def load_muse_texts(files: Mapping[str, str], *, separator: Separator | None = None, chunk: Chunk = "none",
                    window: int = 256, tokenizer: Any = None, suffix: str = ".txt") -> TextSet:
    """One labelled :class:`~expunge.llm.data.TextSet` from several plain-text sources, ``{label:
    path}``, e.g. ``{"forget": ".../forget.txt", "retain": ".../retain2.txt", "holdout":
    ".../holdout.txt"}`` (labels through the aliases of :mod:`expunge.llm.data`: forget = unlearned,
    retain = member, holdout = nonmember). Ids are ``<label key>/<document id>``; each source is read
    by :func:`load_plain_texts` and chunked the same way."""
    if not files:
        raise DataError("no text files given")
    ids, texts, labels = [], [], []
    for key, path in files.items():
        part = load_plain_texts(path, separator=separator, label=key, chunk=chunk, window=window,
                                tokenizer=tokenizer, suffix=suffix)
        ids += [f"{key}/{i}" for i in part.ids]
        texts += list(part.texts)
        labels += list(part.labels)
    return text_set(texts, labels, ids, source=", ".join(str(p) for p in files.values()))
