"""Image-classification datasets through Hugging Face ``datasets`` (``hf:<name or path>``).

``path`` is resolved in this order:

1. a local directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (it holds
   ``state.json`` or ``dataset_dict.json``) -> ``datasets.load_from_disk``;
2. any other local directory (image files in class folders, parquet/csv/json files) or a single
   parquet/csv/json/arrow file -> ``datasets.load_dataset`` with its packaged builders;
3. otherwise a Hub dataset name -> ``datasets.load_dataset(path)``, which works offline only when it
   is already in the local cache; an unreachable Hub becomes a one-line
   :class:`~expunge.errors.DataError`.

A relative ``path`` is first looked up under ``root`` when one is given; for Hub names ``root`` is
the ``datasets`` cache directory.

The image column is the first ``datasets.Image`` feature (else a column named ``img`` or ``image``),
the label column the first ``ClassLabel`` feature (else ``label``, ``labels`` or ``fine_label``);
``image_column`` / ``label_column`` override the guess. With a ``DatasetDict`` and no ``split``,
"train" plus "test" (or, lacking "test", "validation"/"valid"/"val") are both used, the latter
marked ``is_test``; a test split whose labels are all -1 (unlabelled) is dropped. Image columns are
read undecoded and decoded by PIL in a thread pool (see :mod:`expunge.data.imagefolder`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from expunge.data.base import ImageDataset, register_dataset
from expunge.data.imagefolder import channel_stats, decode_all, decode_image, pil_mode
from expunge.errors import DataError

_IMAGE_NAMES = ("img", "image")
_LABEL_NAMES = ("label", "labels", "fine_label")
_TEST_SPLITS = ("test", "validation", "valid", "val")
_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json",
                  ".arrow": "arrow"}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _looks_local(path: str) -> bool:
    """True when ``path`` cannot be a Hub id (``name`` or ``owner/name``)."""
    return path.startswith(("/", ".", "~")) or "\\" in path or path.count("/") > 1


def _open(path: str, root: str | None) -> Any:
    """A ``Dataset`` or ``DatasetDict`` for ``path`` (see the module docstring for the order)."""
    import datasets

    local = Path(path).expanduser()
    if not local.is_absolute() and root is not None and (Path(root).expanduser() / local).exists():
        local = Path(root).expanduser() / local
    if local.exists():
        try:
            if local.is_dir() and ((local / "state.json").is_file()
                                   or (local / "dataset_dict.json").is_file()):
                return datasets.load_from_disk(str(local))
            if local.is_dir():
                return datasets.load_dataset(str(local))
            builder = _FILE_BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise DataError(f"hf: {local} is a file but not parquet/csv/json/arrow")
            return datasets.load_dataset(builder, data_files=str(local))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"hf: cannot load local dataset {local} ({type(e).__name__}: "
                            f"{_one_line(e)})") from e
    if _looks_local(path):
        raise DataError(f"hf: local dataset path {local} does not exist")
    try:
        cache = str(Path(root).expanduser()) if root is not None else None
        return datasets.load_dataset(path, cache_dir=cache)
    except Exception as e:  # ConnectionError when offline, DatasetNotFoundError, hub HTTP errors...
        raise DataError(f"hf: {path!r} is neither a local path nor a dataset reachable on the "
                        f"Hugging Face Hub ({type(e).__name__}: {_one_line(e)})") from e


def _pick_splits(obj: Any, split: str | None, path: str) -> list[tuple[str, Any, bool]]:
    """``(split name, Dataset, is_test)`` for the parts to load."""
    import datasets

    if isinstance(obj, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise DataError(f"hf: {path} is a streaming dataset; save it to disk first")
    if isinstance(obj, datasets.Dataset):
        return [(split or str(obj.split or "data"), obj, False)]
    names = list(obj)
    if split is not None:
        if split not in obj:
            raise DataError(f"hf: {path} has no split {split!r} (splits: {', '.join(names)})")
        return [(split, obj[split], False)]
    if "train" in obj:
        parts = [("train", obj["train"], False)]
        test = next((s for s in _TEST_SPLITS if s in obj), None)
        if test is not None:
            parts.append((test, obj[test], True))
        return parts
    if len(names) == 1:
        return [(names[0], obj[names[0]], False)]
    raise DataError(f"hf: {path} has splits {', '.join(names)} and none is 'train'; choose one "
                    f"with data.split=NAME")


def _columns(ds: Any, image_column: str | None, label_column: str | None,
             path: str) -> tuple[str, str]:
    import datasets

    cols = list(ds.column_names)
    feats = ds.features
    listing = ", ".join(cols)

    def pick(kind: str, given: str | None, feature: type, names: Any) -> str:
        """The named column, else the first with the right feature type, else a conventional name."""
        if given is not None:
            if given not in cols:
                raise DataError(f"hf: {path} has no column {given!r} (columns: {listing})")
            return given
        found = next((c for c in cols if isinstance(feats[c], feature)),
                     next((c for c in cols if c.lower() in names), None))
        if found is None:
            raise DataError(f"hf: {path} has no {kind} column (columns: {listing}); set "
                            f"data.{kind}_column=NAME")
        return found

    image = pick("image", image_column, datasets.Image, _IMAGE_NAMES)
    label = pick("label", label_column, datasets.ClassLabel, _LABEL_NAMES)
    return image, label


def _labels(parts: list[tuple[str, Any, bool]], col: str,
            path: str) -> tuple[list[np.ndarray], int, list[str]]:
    """Labels per part as int64, the class count and the class names."""
    import datasets

    feat = parts[0][1].features[col]
    raw = [list(ds[col]) for _, ds, _ in parts]
    if isinstance(feat, datasets.ClassLabel):
        return [np.asarray(r, dtype=np.int64) for r in raw], int(feat.num_classes), list(feat.names)
    values = [v for r in raw for v in r]
    if values and all(isinstance(v, str) for v in values):
        classes = sorted(set(values))
        index = {c: i for i, c in enumerate(classes)}
        return [np.array([index[v] for v in r], dtype=np.int64) for r in raw], len(classes), classes
    try:
        arrays = [np.asarray(r, dtype=np.float64) for r in raw]
    except (TypeError, ValueError) as e:
        raise DataError(f"hf: {path}: label column {col!r} is not integer class ids") from e
    if any(not np.all(np.isfinite(a) & (a == np.round(a))) for a in arrays):
        raise DataError(f"hf: {path}: label column {col!r} is not integer class ids")
    ints = [a.astype(np.int64) for a in arrays]
    num_classes = max(int(a.max()) for a in ints if a.size) + 1
    return ints, num_classes, [str(i) for i in range(num_classes)]


def _image_source(value: Any, what: str) -> Any:
    """Something :func:`decode_image` accepts: a path, encoded bytes or a PIL image."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return value["path"]
        raise DataError(f"hf: image {what} has neither bytes nor a path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    arr = np.asarray(value)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"hf: image {what} is neither an image nor a numeric array "
                        f"(shape {arr.shape}, dtype {arr.dtype})")
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@register_dataset("hf")
def hf(root: str | None = None, path: str = "", image_column: str | None = None,
       label_column: str | None = None, split: str | None = None, size: int | None = None,
       channels: int = 3) -> ImageDataset:
    """Any Hugging Face image-classification dataset (hf:<hub name or local path>); optional resize."""
    import datasets

    if not path:
        raise DataError("hf: name the dataset as hf:<hub name or local path>")
    if size is not None and int(size) < 1:
        raise DataError(f"hf: data.size must be a positive int, got {size}")
    size = None if size is None else int(size)
    mode = pil_mode(channels, "hf")

    parts = _pick_splits(_open(path, root), split, path)
    image_col, label_col = _columns(parts[0][1], image_column, label_column, path)
    for name, ds, _ in parts[1:]:
        if image_col not in ds.column_names or label_col not in ds.column_names:
            raise DataError(f"hf: {path} split {name!r} lacks column {image_col!r} or {label_col!r}")
    labels, num_classes, classes = _labels(parts, label_col, path)
    if len(parts) > 1 and parts[-1][2] and labels[-1].size and labels[-1].max() < 0:
        parts, labels = parts[:-1], labels[:-1]  # an unlabelled test split (all -1)
    for (name, _, _), lab in zip(parts, labels):
        if lab.size and lab.min() < 0:
            raise DataError(f"hf: {path} split {name!r} has unlabelled rows (label {int(lab.min())})")

    sources: list[Any] = []
    names: list[str] = []
    for name, ds, _ in parts:
        col = ds.select_columns([image_col])
        if isinstance(col.features[image_col], datasets.Image):
            col = col.cast_column(image_col, datasets.Image(decode=False))  # decode in our pool
        try:
            for batch in col.iter(batch_size=1024):
                for v in batch[image_col]:
                    where = v.get("path") if isinstance(v, dict) else None
                    names.append(where or f"#{len(names)} of {path} split {name!r}")
                    sources.append(_image_source(v, names[-1]))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"hf: cannot read the {image_col!r} column of {path} split {name!r} "
                            f"({type(e).__name__}: {_one_line(e)})") from e
    if not sources:
        raise DataError(f"hf: {path} is empty")
    images = decode_all(len(sources), lambda i: decode_image(sources[i], mode, size, names[i]), channels,
                        size, "hf", lambda i: names[i])
    is_test = None
    if any(t for _, _, t in parts):
        is_test = np.concatenate([np.full(len(lab), t, dtype=bool)
                                  for (_, _, t), lab in zip(parts, labels)])
    mean, std = channel_stats(images)
    h, w = images.shape[2:]
    return ImageDataset("hf", torch.from_numpy(images),
                        torch.from_numpy(np.concatenate(labels)), num_classes, mean, std,
                        is_test=is_test, classes=classes, crop_pad=max(1, min(h, w) // 8), flip=True)
