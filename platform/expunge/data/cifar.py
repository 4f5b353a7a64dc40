"""CIFAR-10 and CIFAR-100 from the authors' "python version" batch files.

The files read are exactly the ones in ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` from
https://www.cs.toronto.edu/~kriz/cifar.html::

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

(``root`` may also point at that folder itself.) Each batch is a pickled dict written by Python 2:
``b"data"`` is a numpy uint8 array ``[N, 3072]`` (1024 red, then 1024 green, then 1024 blue values,
row-major per plane, so a plain reshape gives ``[N, 3, 32, 32]``), ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100) a list of ints; the meta file holds ``b"label_names"`` /
``b"fine_label_names"``.

Pickles can run arbitrary code when loaded, and the project forbids unpickling files it did not
write with the stock unpickler. These files are read with :class:`_RestrictedUnpickler`, which
refuses every global except the handful numpy needs to rebuild a plain numeric array, so a tampered
file can at worst fail to load; it can never import or call anything else.
"""
from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from expunge.data.base import ImageDataset, register_dataset
from expunge.errors import DataError


def _numpy_reconstruct() -> Callable[..., Any]:
    core = getattr(np, "_core", None)  # numpy >= 2 spells it numpy._core; numpy 1.x numpy.core
    module = core.multiarray if core is not None else np.core.multiarray  # type: ignore[attr-defined]
    return module._reconstruct


def _numpy_frombuffer() -> Callable[..., Any]:
    core = getattr(np, "_core", None)
    module = core.numeric if core is not None else np.core.numeric  # type: ignore[attr-defined]
    return module._frombuffer


def _safe_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for the unpickler, refusing object dtypes (they would hold arbitrary objects)."""
    dt = np.dtype(*args)
    if dt.hasobject:
        raise _ForbiddenGlobal("an object-dtype numpy array")
    return dt


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global (class or function) that the restricted unpickler does not allow."""


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds plain data: dicts, lists, tuples, str, bytes, numbers and
    numeric numpy arrays.

    Why these globals and no others:

    * ``numpy.core.multiarray._reconstruct`` (how the official Python 2 files and protocol <= 4
      pickles spell it; numpy 2 writes ``numpy._core.multiarray._reconstruct``), ``numpy.ndarray``
      and ``numpy.dtype``: the three names an ndarray pickle references at protocols 0-4.
    * ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``: what an ndarray
      pickled at protocol 5 (Python 3.14's default) references instead of ``_reconstruct``.
    * ``_codecs.encode``: how Python 3 writes ``bytes`` (e.g. the ``b"data"`` keys) at protocol <= 2;
      it only turns a str into bytes.

    Each name maps to the real numpy object (never imported by the name the file gives), and
    ``numpy.dtype`` goes through :func:`_safe_dtype`, which rejects object dtypes. Anything else --
    ``os.system``, ``builtins.eval``, a custom class -- raises :class:`_ForbiddenGlobal`.
    """

    _ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: _safe_dtype,
        ("_codecs", "encode"): lambda: codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return factory()


@dataclass(frozen=True)
class _Spec:
    """Where one CIFAR variant's files live and which keys they use."""

    name: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    torchvision_class: str


_SPECS = {
    "cifar10": _Spec("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                     ("test_batch",), "batches.meta", "labels", "label_names", 10,
                     (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "CIFAR10"),
    "cifar100": _Spec("cifar100", "cifar-100-python", ("train",), ("test",), "meta", "fine_labels",
                      "fine_label_names", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                      "CIFAR100"),
}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _unpickle(path: Path, spec: _Spec) -> dict[str, Any]:
    """Read one batch/meta file with the restricted unpickler; keys come back as str."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except _ForbiddenGlobal as e:
        raise DataError(f"{spec.name}: refusing {path}: it references {e}, which a CIFAR batch never "
                        f"contains (only numeric numpy arrays, lists, bytes, str and ints are allowed)"
                        ) from e
    except OSError as e:
        raise DataError(f"{spec.name}: cannot read {path}: {_one_line(e)}") from e
    except Exception as e:  # a truncated or garbage file can fail in many ways inside the unpickler
        raise DataError(f"{spec.name}: {path} is not a CIFAR python batch or is corrupt "
                        f"({type(e).__name__}: {_one_line(e)})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{spec.name}: {path} holds a {type(obj).__name__}, not a CIFAR batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_batch(path: Path, spec: _Spec) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64 from one batch file."""
    d = _unpickle(path, spec)
    if "data" not in d or spec.label_key not in d:
        raise DataError(f"{spec.name}: {path} lacks the 'data' or '{spec.label_key}' entry "
                        f"(keys: {', '.join(sorted(d))})")
    data, labels = d["data"], d[spec.label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{spec.name}: {path}: 'data' must be a uint8 array [N, 3072], got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{spec.name}: {path}: '{spec.label_key}' is not a list of ints") from e
    if labels.shape != (data.shape[0],):
        raise DataError(f"{spec.name}: {path}: {data.shape[0]} images but {labels.size} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _locate(root: Path, spec: _Spec) -> Path:
    """The folder holding the batch files: ``root`` itself if it has them, else ``root/<folder>``."""
    if root.name == spec.folder or (root / spec.meta).is_file():
        return root
    return root / spec.folder


def _download(root: Path, spec: _Spec) -> None:
    """Fetch and extract the authors' archive with torchvision's downloader (md5-checked).

    torchvision's ``CIFAR10``/``CIFAR100`` classes provide the URL and checksum; their own
    download helper is called rather than constructing the dataset, because the constructor would
    then unpickle the files with the unrestricted loader.
    """
    from torchvision import datasets as tvd
    from torchvision.datasets import utils as tvu

    cls = getattr(tvd, spec.torchvision_class)
    parent = root.parent if root.name == spec.folder else root
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tvu.download_and_extract_archive(cls.url, str(parent), filename=cls.filename, md5=cls.tgz_md5)
    except Exception as e:  # URLError, socket errors, checksum RuntimeError, tar errors...
        raise DataError(f"{spec.name}: could not download {cls.url} into {parent} (the network may be "
                        f"unreachable: {type(e).__name__}: {_one_line(e)}); fetch and extract it by hand"
                        ) from e


def _load_cifar(spec: _Spec, root: str | None, download: bool) -> ImageDataset:
    if root is None:
        raise DataError(f"{spec.name}: set data.root to the directory holding {spec.folder}/")
    root_path = Path(root).expanduser()
    if not root_path.is_dir() and not download:
        raise DataError(f"{spec.name}: data root {root_path} does not exist (or is not a directory)")
    folder = _locate(root_path, spec) if root_path.is_dir() else root_path / spec.folder
    required = (spec.meta,) + spec.train + spec.test
    missing = [folder / f for f in required if not (folder / f).is_file()]
    if missing and download:
        _download(root_path, spec)
        folder = _locate(root_path, spec)
        missing = [folder / f for f in required if not (folder / f).is_file()]
        if missing:
            raise DataError(f"{spec.name}: the download finished but {missing[0]} is still missing")
    elif missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{spec.name}: missing {missing[0]}{more}; put the python-version batches "
                        f"there or pass data.download=true")

    meta = _unpickle(folder / spec.meta, spec)
    names = meta.get(spec.names_key)
    if not isinstance(names, (list, tuple)) or len(names) != spec.num_classes:
        raise DataError(f"{spec.name}: {folder / spec.meta} must list {spec.num_classes} "
                        f"'{spec.names_key}'")
    classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]

    parts = [_read_batch(folder / f, spec) for f in spec.train + spec.test]
    n_train = sum(len(p[1]) for p in parts[:len(spec.train)])
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[n_train:] = True
    return ImageDataset(spec.name, torch.from_numpy(images), torch.from_numpy(labels),
                        spec.num_classes, spec.mean, spec.std, is_test=is_test, classes=classes,
                        crop_pad=4, flip=True)


@register_dataset("cifar10")
def cifar10(root: str | None = None, download: bool = False) -> ImageDataset:
    """CIFAR-10 (60,000 32x32 colour images, 10 classes) from the python-version batches under root."""
    return _load_cifar(_SPECS["cifar10"], root, download)


@register_dataset("cifar100")
def cifar100(root: str | None = None, download: bool = False) -> ImageDataset:
    """CIFAR-100 (60,000 32x32 colour images, 100 fine classes) from the python-version files under root."""
    return _load_cifar(_SPECS["cifar100"], root, download)
