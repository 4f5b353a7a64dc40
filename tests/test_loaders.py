"""The real-data loaders (CIFAR batches, image folders, Hugging Face datasets) on tiny files written
in the true on-disk formats, including their user-facing errors."""
from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from expunge.data import load_dataset
from expunge.errors import DataError

# ----------------------------------------------------------------------------------------- CIFAR

C10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]


def _batch(rng: np.random.Generator, n: int, label_key: bytes, num_classes: int,
           batch_label: bytes) -> dict:
    """One batch dict shaped like the authors' files (data uint8 [N, 3072], labels a list)."""
    d = {b"batch_label": batch_label,
         label_key: [int(v) for v in rng.integers(0, num_classes, n)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [v // 5 for v in d[label_key]]
    return d


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(parent: Path, per_batch: int = 3, n_test: int = 4, seed: int = 0) -> list[dict]:
    """``parent/cifar-10-batches-py`` with five training batches, a test batch and the meta file."""
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = []
    for i in range(1, 6):
        batches.append(_batch(rng, per_batch, b"labels", 10, f"training batch {i} of 5".encode()))
        _dump(batches[-1], folder / f"data_batch_{i}")
    batches.append(_batch(rng, n_test, b"labels", 10, b"testing batch 1 of 1"))
    _dump(batches[-1], folder / "test_batch")
    _dump({b"num_cases_per_batch": per_batch, b"label_names": C10_NAMES, b"num_vis": 3072},
          folder / "batches.meta")
    return batches


def write_cifar100(parent: Path, n_train: int = 6, n_test: int = 3) -> list[dict]:
    rng = np.random.default_rng(1)
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    train = _batch(rng, n_train, b"fine_labels", 100, b"training batch 1 of 1")
    test = _batch(rng, n_test, b"fine_labels", 100, b"testing batch 1 of 1")
    _dump(train, folder / "train")
    _dump(test, folder / "test")
    _dump({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
           b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}, folder / "meta")
    return [train, test]


def _expected(batches: list[dict], key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(b[key]) for b in batches])
    return images, labels


def test_cifar10_round_trip(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=str(tmp_path))
    images, labels = _expected(batches, b"labels")
    assert ds.name == "cifar10" and len(ds) == 19 and ds.in_shape == (3, 32, 32)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert np.array_equal(ds.images.numpy(), images)
    assert np.array_equal(ds.labels.numpy(), labels)
    assert ds.is_test.tolist() == [False] * 15 + [True] * 4
    assert ds.classes == [n.decode() for n in C10_NAMES] and ds.num_classes == 10
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)
    assert ds.crop_pad == 4 and ds.flip is True
    # the first pixel row of the red plane is data[:32]
    assert np.array_equal(ds.images[0, 0, 0].numpy(), batches[0][b"data"][0, :32])
    assert np.array_equal(ds.images[0, 2, 31].numpy(), batches[0][b"data"][0, -32:])


def test_cifar10_root_may_be_the_batch_folder(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    a = load_dataset("cifar10", root=str(tmp_path))
    b = load_dataset("cifar10", root=str(tmp_path / "cifar-10-batches-py"))
    assert a.fingerprint == b.fingerprint


def test_cifar100_round_trip(tmp_path: Path) -> None:
    batches = write_cifar100(tmp_path)
    ds = load_dataset("cifar100", root=str(tmp_path))
    images, labels = _expected(batches, b"fine_labels")
    assert ds.images.shape == (9, 3, 32, 32) and ds.num_classes == 100
    assert np.array_equal(ds.images.numpy(), images)
    assert np.array_equal(ds.labels.numpy(), labels)
    assert ds.is_test.tolist() == [False] * 6 + [True] * 3
    assert ds.classes[:2] == ["fine0", "fine1"] and len(ds.classes) == 100
    assert ds.mean == (0.5071, 0.4865, 0.4409) and ds.std == (0.2673, 0.2564, 0.2762)


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` and ``str`` the way Python 2's cPickle wrote ``str`` (BINSTRING opcodes)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def test_cifar_reads_python2_style_pickles(tmp_path: Path) -> None:
    """The official files are Python 2 pickles that spell numpy.core.multiarray."""
    batches = write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(batches[0])
    raw = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    (folder / "data_batch_1").write_bytes(raw)
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert np.array_equal(ds.images[:3].numpy(), batches[0][b"data"].reshape(-1, 3, 32, 32))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_reads_other_pickle_protocols(tmp_path: Path, protocol: int) -> None:
    """Protocol 2 writes bytes via _codecs.encode, protocol 5 arrays via numpy's _frombuffer."""
    batches = write_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(batches[-1], f, protocol=protocol)
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert np.array_equal(ds.images[-4:].numpy(), batches[-1][b"data"].reshape(-1, 3, 32, 32))


class _Evil:
    """Unpickling this would call os.mkdir on the marker path."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


class _Custom:
    pass


@pytest.mark.parametrize("payload", ["os_call", "os_reference", "custom_class", "object_array"])
def test_cifar_refuses_forbidden_globals(tmp_path: Path, payload: str) -> None:
    batches = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    bad = dict(batches[0])
    bad[b"extra"] = {"os_call": _Evil(marker), "os_reference": os.system, "custom_class": _Custom(),
                     "object_array": np.array([1, "x"], dtype=object)}[payload]
    target = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    _dump(bad, target)
    with pytest.raises(DataError, match="refusing") as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(target) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_cifar_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py" / "batches.meta") in msg
    assert "data.download=true" in msg
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", root=str(tmp_path))


def test_cifar_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset("cifar100", root=str(root))
    assert str(root) in str(err.value)
    with pytest.raises(DataError, match="data.root"):
        load_dataset("cifar10")


def test_cifar_corrupt_batch(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(b"\x80\x04this is not a pickle")
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(target) in str(err.value) and "\n" not in str(err.value)


def test_cifar_wrong_data_shape(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    bad = dict(batches[0])
    bad[b"data"] = np.zeros((3, 100), dtype=np.uint8)
    _dump(bad, tmp_path / "cifar-10-batches-py" / "data_batch_1")
    with pytest.raises(DataError, match=r"uint8 array \[N, 3072\]"):
        load_dataset("cifar10", root=str(tmp_path))


def test_cifar_download_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import utils as tvu

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="could not download .*network may be unreachable"):
        load_dataset("cifar10", root=str(tmp_path / "new"), download=True)


def test_cifar_download_then_own_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import utils as tvu

    calls = []

    def fake_download(url: str, download_root: str, filename: str, md5: str) -> None:
        calls.append((url, download_root, filename, md5))
        write_cifar100(Path(download_root))

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake_download)
    root = tmp_path / "data"
    ds = load_dataset("cifar100", root=str(root), download=True)
    assert len(ds) == 9 and calls[0][0].endswith("cifar-100-python.tar.gz")
    assert calls[0][1] == str(root) and calls[0][3]
    load_dataset("cifar100", root=str(root), download=True)  # files present: no second download
    assert len(calls) == 1


# ----------------------------------------------------------------------------------- imagefolder


def _png(path: Path, arr: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _rand(rng: np.random.Generator, h: int = 6, w: int = 6, c: int = 3) -> np.ndarray:
    shape = (h, w, c) if c > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _flat_tree(root: Path, seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    arrays = {"cat": [_png(root / "cat" / f"{i}.png", _rand(rng)) for i in range(2)],
              "dog": [_png(root / "dog" / "0.PNG", _rand(rng))]}
    (root / "README.txt").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "dog" / "notes.txt").write_text("skip me")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.png").write_bytes(b"junk")
    return arrays


def test_imagefolder_flat_layout(tmp_path: Path) -> None:
    arrays = _flat_tree(tmp_path)
    ds = load_dataset("imagefolder", root=str(tmp_path))
    assert ds.images.shape == (3, 3, 6, 6) and ds.images.dtype == torch.uint8
    assert ds.classes == ["cat", "dog"] and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1] and ds.is_test is None
    expected = np.stack(arrays["cat"] + arrays["dog"]).transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images.numpy(), expected)  # PNG is lossless
    x = torch.from_numpy(expected).double() / 255
    assert np.allclose(ds.mean, x.mean(dim=(0, 2, 3)).numpy())
    assert np.allclose(ds.std, x.std(dim=(0, 2, 3), unbiased=False).numpy())
    assert ds.flip is True and ds.crop_pad == 1


def test_imagefolder_cinic_layout(tmp_path: Path) -> None:
    """train/valid/test: valid is folded into the pool, test is the official test part."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        for cls in ("airplane", "bird"):
            arrays[split, cls] = [_png(tmp_path / split / cls / f"{cls}_{i}.png", _rand(rng, 8, 8))
                                  for i in range(n)]
    ds = load_dataset("imagefolder", root=str(tmp_path))
    assert len(ds) == 8 and ds.classes == ["airplane", "bird"]
    assert ds.is_test.tolist() == [False] * 6 + [True] * 2
    order = [("train", "airplane"), ("train", "bird"), ("valid", "airplane"), ("valid", "bird"),
             ("test", "airplane"), ("test", "bird")]
    expected = np.stack([a for key in order for a in arrays[key]]).transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images.numpy(), expected)
    assert ds.labels.tolist() == [0, 0, 1, 1, 0, 1, 0, 1]


def test_imagefolder_train_val_layout_uses_val_as_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            _png(tmp_path / split / cls / "0.jpg", _rand(rng))
    ds = load_dataset("imagefolder", root=str(tmp_path))
    assert ds.is_test.tolist() == [False, False, True, True] and ds.labels.tolist() == [0, 1, 0, 1]


def test_imagefolder_tiny_imagenet_layout(tmp_path: Path) -> None:
    wnids = ["n01443537", "n01629819"]
    colours = {wnids[0]: (200, 30, 30), wnids[1]: (30, 30, 200)}
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (tmp_path / "words.txt").write_text("n01443537\tgoldfish\nn01629819\tsalamander\n")

    def jpeg(path: Path, colour: tuple[int, int, int]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), colour).save(path, quality=95)

    for w in wnids:
        for i in range(2):
            jpeg(tmp_path / "train" / w / "images" / f"{w}_{i}.JPEG", colours[w])
        (tmp_path / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t0\t0\t15\t15\n")
    lines = []
    for i, w in enumerate([wnids[1], wnids[0], wnids[1]]):
        jpeg(tmp_path / "val" / "images" / f"val_{i}.JPEG", colours[w])
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t15\t15")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    jpeg(tmp_path / "test" / "images" / "test_0.JPEG", (0, 0, 0))  # unlabelled: skipped

    ds = load_dataset("imagefolder", root=str(tmp_path))
    assert ds.images.shape == (7, 3, 16, 16) and ds.classes == wnids
    assert ds.labels.tolist() == [0, 0, 1, 1, 1, 0, 1]
    assert ds.is_test.tolist() == [False] * 4 + [True] * 3
    red = ds.images[:, 0].float().mean(dim=(1, 2))
    assert torch.all((red > 150) == (ds.labels == 0))  # JPEG is lossy, but the colours survive
    assert ds.crop_pad == 2


def test_imagefolder_annotation_missing_for_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _png(tmp_path / "train" / "a" / "0.png", _rand(rng))
    _png(tmp_path / "val" / "images" / "val_0.png", _rand(rng))
    _png(tmp_path / "val" / "images" / "val_1.png", _rand(rng))
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.png\ta\n")
    with pytest.raises(DataError, match="val_1.png has no line"):
        load_dataset("imagefolder", root=str(tmp_path))


def test_imagefolder_sizes_and_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _png(tmp_path / "a" / "0.png", _rand(rng, 6, 6))
    _png(tmp_path / "b" / "0.png", _rand(rng, 10, 7))
    with pytest.raises(DataError, match="differ in size.*data.size"):
        load_dataset("imagefolder", root=str(tmp_path))
    ds = load_dataset("imagefolder", root=str(tmp_path), size=8)
    assert ds.images.shape == (2, 3, 8, 8) and ds.crop_pad == 1


def test_imagefolder_grayscale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = _png(tmp_path / "a" / "0.png", _rand(rng, 5, 5, c=1))
    rgb = _png(tmp_path / "b" / "0.bmp", _rand(rng, 5, 5))
    ds = load_dataset("imagefolder", root=str(tmp_path), channels=1)
    assert ds.images.shape == (2, 1, 5, 5) and len(ds.mean) == 1
    assert np.array_equal(ds.images[0, 0].numpy(), grey)
    assert np.array_equal(ds.images[1, 0].numpy(), np.asarray(Image.fromarray(rgb).convert("L")))
    rgb_ds = load_dataset("imagefolder", root=str(tmp_path))
    assert np.array_equal(rgb_ds.images[0].numpy(), np.stack([grey] * 3))
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        load_dataset("imagefolder", root=str(tmp_path), channels=4)


def test_imagefolder_corrupt_image(tmp_path: Path) -> None:
    _flat_tree(tmp_path)
    bad = tmp_path / "cat" / "broken.jpeg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(DataError, match="cannot read image") as err:
        load_dataset("imagefolder", root=str(tmp_path))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_imagefolder_bad_roots(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(DataError) as err:
        load_dataset("imagefolder", root=str(missing))
    assert str(missing) in str(err.value)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("imagefolder", root=str(tmp_path / "file.txt"))
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.md").write_text("no images")
    with pytest.raises(DataError, match="no class folders with images"):
        load_dataset("imagefolder", root=str(empty))


def test_imagefolder_fingerprint(tmp_path: Path) -> None:
    _flat_tree(tmp_path / "one", seed=0)
    _flat_tree(tmp_path / "two", seed=1)
    _flat_tree(tmp_path / "copy", seed=0)
    one = load_dataset("imagefolder", root=str(tmp_path / "one"))
    two = load_dataset("imagefolder", root=str(tmp_path / "two"))
    copy = load_dataset("imagefolder", root=str(tmp_path / "copy"))
    assert one.fingerprint != two.fingerprint
    assert one.fingerprint == copy.fingerprint  # content, not location


# -------------------------------------------------------------------------------------------- hf


def _hf_dataset(rng: np.random.Generator, n: int, names: list[str], image_col: str = "img",
                label_col: str = "label"):
    import datasets

    arrays = [_rand(rng, 4, 5) for _ in range(n)]
    labels = [i % len(names) for i in range(n)]
    features = datasets.Features({image_col: datasets.Image(),
                                  label_col: datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({image_col: [Image.fromarray(a) for a in arrays],
                                     label_col: labels}, features=features)
    return ds, np.stack(arrays).transpose(0, 3, 1, 2), labels


def test_hf_saved_dataset(tmp_path: Path) -> None:
    ds, images, labels = _hf_dataset(np.random.default_rng(0), 5, ["zero", "one", "two"])
    ds.save_to_disk(str(tmp_path / "saved"))
    out = load_dataset("hf:" + str(tmp_path / "saved"))
    assert out.name == "hf" and out.images.shape == (5, 3, 4, 5) and out.images.dtype == torch.uint8
    assert np.array_equal(out.images.numpy(), images)
    assert out.labels.tolist() == labels and out.num_classes == 3
    assert out.classes == ["zero", "one", "two"] and out.is_test is None


def test_hf_saved_dataset_dict(tmp_path: Path) -> None:
    import datasets

    rng = np.random.default_rng(1)
    train, train_images, train_labels = _hf_dataset(rng, 4, ["a", "b"], "image", "fine_label")
    test, test_images, test_labels = _hf_dataset(rng, 2, ["a", "b"], "image", "fine_label")
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    out = load_dataset("hf:" + str(tmp_path / "dd"))
    assert np.array_equal(out.images.numpy(), np.concatenate([train_images, test_images]))
    assert out.labels.tolist() == train_labels + test_labels
    assert out.is_test.tolist() == [False] * 4 + [True] * 2
    only = load_dataset("hf:" + str(tmp_path / "dd"), split="test", size=3, channels=1)
    assert only.images.shape == (2, 1, 3, 3) and only.is_test is None
    with pytest.raises(DataError, match="no split 'valid'.*train, test"):
        load_dataset("hf:" + str(tmp_path / "dd"), split="valid")


def test_hf_relative_path_under_root(tmp_path: Path) -> None:
    ds, images, _ = _hf_dataset(np.random.default_rng(0), 3, ["a", "b"])
    ds.save_to_disk(str(tmp_path / "saved"))
    out = load_dataset("hf:saved", root=str(tmp_path))
    assert np.array_equal(out.images.numpy(), images)


def test_hf_plain_columns(tmp_path: Path) -> None:
    """An image stored as a nested array and an int label column without ClassLabel."""
    import datasets

    rng = np.random.default_rng(0)
    arrays = [_rand(rng, 4, 4) for _ in range(3)]
    ds = datasets.Dataset.from_dict({"image": [a.tolist() for a in arrays], "target": [0, 4, 2]})
    ds.save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(DataError, match="no label column.*image, target.*data.label_column"):
        load_dataset("hf:" + str(tmp_path / "plain"))
    out = load_dataset("hf:" + str(tmp_path / "plain"), label_column="target")
    assert np.array_equal(out.images.numpy(), np.stack(arrays).transpose(0, 3, 1, 2))
    assert out.num_classes == 5 and out.labels.tolist() == [0, 4, 2]
    assert out.classes == ["0", "1", "2", "3", "4"]


def test_hf_without_image_column(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"x": [1, 2], "label": [0, 1]}).save_to_disk(str(tmp_path / "t"))
    with pytest.raises(DataError, match=r"no image column \(columns: x, label\)") as err:
        load_dataset("hf:" + str(tmp_path / "t"))
    assert str(tmp_path / "t") in str(err.value)
    with pytest.raises(DataError, match="no column 'pixels'"):
        load_dataset("hf:" + str(tmp_path / "t"), image_column="pixels")


def test_hf_local_image_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain folder of images goes through datasets' imagefolder builder."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    rng = np.random.default_rng(0)
    arrays = {(s, c): _png(tmp_path / "imgs" / s / c / "0.png", _rand(rng))
              for s in ("train", "test") for c in ("cat", "dog")}
    out = load_dataset("hf:" + str(tmp_path / "imgs"))
    assert out.classes == ["cat", "dog"] and out.is_test.tolist() == [False, False, True, True]
    for i in range(4):
        split = "test" if out.is_test[i] else "train"
        expected = arrays[split, out.classes[int(out.labels[i])]]
        assert np.array_equal(out.images[i].numpy(), expected.transpose(2, 0, 1))


def test_hf_missing_local_path_and_offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config

    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset("hf:" + str(missing))
    assert str(missing) in str(err.value)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="'someone/not-cached-here' is neither a local path nor "
                                        "a dataset reachable"):
        load_dataset("hf:someone/not-cached-here", root=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="hf:<hub name or local path>"):
        load_dataset("hf:")
