"""Class-per-folder image trees: CINIC-10, Tiny-ImageNet and any ``<class>/<image>`` layout.

Layouts read (folder names are matched case-insensitively, hidden entries are ignored):

* ``root/<class>/<image>`` -- one pool, no official test part (``is_test`` is ``None``).
* ``root/train/<class>/...`` plus a labelled ``root/test/`` (or, when there is none, ``val/``,
  ``valid/`` or ``validation/``) -- the test folder becomes the ``is_test`` part. The remaining
  labelled validation folders are folded into the training part: CINIC-10's ``train/valid/test``
  gives train+valid as the pool and test as the official test part, since the
  :class:`~expunge.data.splits.SplitPlan` carves its own validation split from the pool.
* Images may sit anywhere below their class folder, so Tiny-ImageNet's
  ``train/<wnid>/images/*.JPEG`` works. A split folder holding ``images/`` and an
  ``*annotations*.txt`` file (Tiny-ImageNet's ``val/images`` + ``val/val_annotations.txt``, one
  ``<file>\\t<class>...`` line per image) takes each image's class from that file; a split folder
  with only unlabelled images (Tiny-ImageNet's ``test/images``) is skipped.

Files whose extension is one of :data:`IMAGE_EXTENSIONS` must open with PIL (else a
:class:`~expunge.errors.DataError` names the file); every other file (README.txt, .DS_Store,
Tiny-ImageNet's ``*_boxes.txt``) is skipped. Classes are the sorted folder names. Images are decoded
by a small thread pool (PIL releases the GIL while decoding) straight into one preallocated uint8
array, so peak memory is the dataset itself. Mean/std are measured from the loaded pixels.
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from expunge.data.base import ImageDataset, register_dataset
from expunge.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm"})
#: labelled split folders that may serve as the official test part, in order of preference
_TEST_SPLITS = ("test", "val", "valid", "validation")
_CHUNK = 256


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def pil_mode(channels: int, who: str) -> str:
    """PIL mode for a channel count: 3 -> RGB, 1 -> L."""
    if channels == 3:
        return "RGB"
    if channels == 1:
        return "L"
    raise DataError(f"{who}: channels must be 1 or 3, got {channels}")


def decode_image(src: str | Path | bytes | Image.Image, mode: str, size: int | None,
                 what: str) -> np.ndarray:
    """Decode one image into ``[H, W]`` (mode L) or ``[H, W, 3]`` (mode RGB) uint8.

    ``src`` is a file path, encoded bytes or an already open PIL image; ``size`` resizes to
    ``size x size`` (bilinear, which PIL antialiases when shrinking). ``what`` names the image in
    the :class:`DataError` raised when it cannot be decoded.
    """
    try:
        if isinstance(src, Image.Image):
            im = src.convert(mode)
        else:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as opened:
                im = opened.convert(mode)  # convert() forces the full decode inside the try
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {what}: {_one_line(e)}") from e


def decode_all(n: int, read: Callable[[int], np.ndarray], channels: int, size: int | None,
               who: str, names: Callable[[int], str]) -> np.ndarray:
    """Decode images ``0..n-1`` with ``read(i)`` in a thread pool into one ``[N, C, H, W]`` uint8 array.

    Without ``size`` every image must have the first image's size; ``names(i)`` names image ``i``
    in the error.
    """
    first = read(0)
    h, w = first.shape[:2]
    out = np.empty((n, channels, h, w), dtype=np.uint8)

    def put(i: int, arr: np.ndarray) -> None:
        if arr.shape[:2] != (h, w):
            raise DataError(f"{who}: images differ in size ({names(0)} is {w}x{h}, {names(i)} is "
                            f"{arr.shape[1]}x{arr.shape[0]}); set data.size=N to resize them all")
        out[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    put(0, first)

    def work(start: int) -> None:
        for i in range(max(start, 1), min(start + _CHUNK, n)):
            put(i, read(i))

    workers = max(1, min(8, (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(work, range(0, n, _CHUNK)):  # re-raises the first failing chunk's error
            pass
    return out


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 ``[N, C, H, W]`` pixels scaled to [0, 1].

    Accumulated in float64 chunk by chunk so a large dataset never exists as floats all at once.
    The std is floored at 1/255 so a constant channel cannot make normalisation divide by zero.
    """
    c = images.shape[1]
    s, ss, count = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(images), 1024):
        chunk = images[i:i + 1024].astype(np.float64) / 255.0
        s += chunk.sum(axis=(0, 2, 3))
        ss += np.square(chunk).sum(axis=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean ** 2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(max(v, 1.0 / 255.0)) for v in std)


def _visible(entries: list[Path]) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith("."))


def _subdirs(d: Path) -> list[Path]:
    return _visible([p for p in d.iterdir() if p.is_dir()])


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _images_below(d: Path) -> list[Path]:
    """Every image file below ``d`` (recursively, hidden folders skipped), sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = [n for n in dirnames if not n.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if _is_image(Path(f)))
    return sorted(found)


def _scan_split(d: Path) -> list[tuple[Path, str]] | None:
    """``(image, class)`` pairs of one split folder, or ``None`` when it holds no labelled images."""
    images_dir = next((p for p in _subdirs(d) if p.name.lower() == "images"), None)
    annotations = sorted(p for p in d.glob("*annotations*.txt") if p.is_file())
    if images_dir is not None and annotations:
        return _scan_annotated(images_dir, annotations[0])
    classes = _subdirs(d)
    if not classes or (len(classes) == 1 and classes[0] == images_dir and not _subdirs(images_dir)):
        return None  # loose files only (e.g. Tiny-ImageNet's unlabelled test/images)
    return [(p, c.name) for c in classes for p in _images_below(c)]


def _scan_annotated(images_dir: Path, annotations: Path) -> list[tuple[Path, str]]:
    """Tiny-ImageNet style: ``images/`` plus a ``<file>\\t<class>[\\t...]`` annotations file."""
    label_of: dict[str, str] = {}
    for lineno, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields or not line.strip():
            continue
        if len(fields) < 2:
            raise DataError(f"imagefolder: {annotations}:{lineno}: expected '<file> <class> ...'")
        label_of[fields[0].strip()] = fields[1].strip()
    pairs = []
    for p in _images_below(images_dir):
        key = p.relative_to(images_dir).as_posix()
        if key not in label_of and p.name not in label_of:
            raise DataError(f"imagefolder: {p} has no line in {annotations}")
        pairs.append((p, label_of.get(key, label_of.get(p.name, ""))))
    return pairs


def _scan(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]] | None]:
    """Training-pool pairs and official-test pairs (``None`` when there is no test part)."""
    by_name = {p.name.lower(): p for p in _subdirs(root)}
    if "train" not in by_name:
        pool = _scan_split(root)
        if not pool:
            raise DataError(f"imagefolder: no class folders with images under {root} (expected "
                            f"root/<class>/<image> or root/train/<class>/<image>)")
        return pool, None
    train = _scan_split(by_name["train"])
    if train is None:
        raise DataError(f"imagefolder: {by_name['train']} has no class folders")
    labelled: dict[str, list[tuple[Path, str]]] = {}
    for name in _TEST_SPLITS:
        found = _scan_split(by_name[name]) if name in by_name else None
        if found is not None:
            labelled[name] = found
    test_name = next(iter(labelled), None)  # first labelled one in _TEST_SPLITS order
    for name, found in labelled.items():
        if name != test_name:
            train = train + found
    return train, (labelled[test_name] if test_name else None)


@register_dataset("imagefolder")
def imagefolder(root: str | None = None, size: int | None = None, channels: int = 3) -> ImageDataset:
    """Any class-per-folder image tree (CINIC-10, Tiny-ImageNet, root/<class>/<image>); optional resize."""
    if root is None:
        raise DataError("imagefolder: set data.root to the image folder")
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise DataError(f"imagefolder: data root {root_path} does not exist (or is not a directory)")
    if size is not None and int(size) < 1:
        raise DataError(f"imagefolder: data.size must be a positive int, got {size}")
    size = None if size is None else int(size)
    mode = pil_mode(channels, "imagefolder")

    train, test = _scan(root_path)
    pairs = train + (test or [])
    if not pairs:
        raise DataError(f"imagefolder: no images found under {root_path}")
    classes = sorted({c for _, c in pairs})
    index = {c: i for i, c in enumerate(classes)}
    paths = [p for p, _ in pairs]
    labels = np.array([index[c] for _, c in pairs], dtype=np.int64)
    images = decode_all(len(paths), lambda i: decode_image(paths[i], mode, size, str(paths[i])),
                        channels, size, "imagefolder", lambda i: str(paths[i]))
    is_test = None
    if test is not None:
        is_test = np.zeros(len(pairs), dtype=bool)
        is_test[len(train):] = True
    mean, std = channel_stats(images)
    h, w = images.shape[2:]
    return ImageDataset("imagefolder", torch.from_numpy(images), torch.from_numpy(labels),
                        len(classes), mean, std, is_test=is_test, classes=classes,
                        crop_pad=max(1, min(h, w) // 8), flip=True)
