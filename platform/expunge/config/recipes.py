"""Named training recipes: presets for ``train:`` that a config refines (``train.recipe=fast``).

Plain data: the schema fills every key a config leaves unset from the named preset.

* ``standard``: the defaults (SGD + Nesterov, lr 0.05, cosine, batch 128, 30 epochs): small models.
* ``resnet18-standard``: the seed papers' ResNet-18 recipe for CIFAR (SGD lr 0.1, momentum 0.9,
  weight decay 5e-4, cosine, batch 128, 200 epochs, random crop + flip), for reproductions.
* ``fast``: for ``fastnet``, designed after the fastest public CIFAR-10 training scripts (Page's
  ResNet-9; Jordan's airbench): patch-whitening init of the first layer from the data, label
  smoothing 0.2, Nesterov SGD at a high learning rate with a short linear warm-up and triangular
  decay, large batches (1024), bf16 autocast and channels_last on CUDA, flip + translate augmentation
  on the device, 10 epochs. Those scripts report about 94% CIFAR-10 test accuracy in a few seconds on
  one modern GPU; this recipe follows their design but has not been checked on real CIFAR-10 here (no
  data or GPU on the development machines), so expect the same order of speed and treat the accuracy
  as something to verify on your data.
"""
from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "standard": {},
    "resnet18-standard": {
        "epochs": 200, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False,
        "weight_decay": 5e-4, "schedule": "cosine", "augment": True, "label_smoothing": 0.0,
    },
    "fast": {
        "epochs": 10, "batch_size": 1024, "optimizer": "sgd", "lr": 2.0, "momentum": 0.85, "nesterov": True,
        "weight_decay": 5e-4 / 2.0, "schedule": "onecycle", "warmup_epochs": 0.0, "label_smoothing": 0.2,
        "augment": True, "bf16": True, "channels_last": True, "data_init": True,
    },
}
