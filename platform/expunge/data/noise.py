"""Symmetric label noise: the mislabeled-data benchmark behind ``data.label_noise``.

Removing mislabeled or corrupted training data is the motivating case of the IEU paper and a standard
unlearning task (the forget set is the corrupted samples). It is also the case where an audit has
something to find on a small, well-generalising dataset: a model can fit a wrong label only by
memorising that one sample, so a trained-on mislabeled sample is confidently "wrong" while an unseen
one is not, and a model retrained without them treats them like unseen samples.

:func:`with_label_noise` replaces the labels of ``round(rate * N)`` samples, drawn uniformly without
replacement from the whole pool with a generator seeded by ``seed``, by a class drawn uniformly from
the *other* ``C - 1`` classes (symmetric noise, as in Zhang et al., "Understanding deep learning
requires rethinking generalization", ICLR 2017). The noise seed is independent of the split seed, so
every seed of a repeated experiment sees the same corrupted dataset (and shares its fingerprint); the
split plan then decides which corrupted samples are trained on (the forget set, ``forget:
mislabeled``) and which are held out (``forget_heldout``, the non-members drawn the same way).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from expunge.data.base import ImageDataset
from expunge.errors import DataError


def with_label_noise(dataset: ImageDataset, rate: float, seed: int = 0) -> ImageDataset:
    """A copy of ``dataset`` whose labels are corrupted at ``rate`` (see the module docstring).

    The copy records the corrupted positions (``noisy``) and the true labels (``clean_labels``); its
    fingerprint covers the corrupted labels, so artifacts of the clean dataset are never reused.

    >>> from expunge.data import load_dataset
    >>> noisy = with_label_noise(load_dataset("digits"), 0.1)
    >>> int(noisy.noisy.sum()), bool((noisy.labels[noisy.noisy] != noisy.clean_labels[noisy.noisy]).all())
    (180, True)
    """
    if not 0.0 <= rate < 1.0:
        raise DataError(f"data.label_noise={rate}: must be in [0, 1)")
    if rate == 0.0:
        return dataset
    if dataset.num_classes < 2:
        raise DataError(f"data.label_noise needs at least 2 classes; dataset {dataset.name} has {dataset.num_classes}")
    n = len(dataset)
    k = int(round(rate * n))
    if k < 1:
        raise DataError(f"data.label_noise={rate} corrupts no sample of the {n} in dataset {dataset.name}")
    rng = np.random.Generator(np.random.PCG64([seed, 0x6C61_6265]))  # a stream of its own, apart from splits
    pos = np.sort(rng.choice(n, size=k, replace=False))
    clean = dataset.labels.numpy().copy()
    # an offset in 1..C-1 added modulo C is a uniform draw from the other classes
    shift = rng.integers(1, dataset.num_classes, size=k)
    labels = clean.copy()
    labels[pos] = (clean[pos] + shift) % dataset.num_classes
    noisy = np.zeros(n, dtype=bool)
    noisy[pos] = True
    return replace(dataset, labels=torch.from_numpy(labels), noisy=noisy, clean_labels=torch.from_numpy(clean),
                   _fingerprint=None)
