"""Datasets as device tensors, batched augmentation and the SplitPlan."""
from expunge.data.base import DATASETS, ImageDataset, load_dataset, register_dataset
from expunge.data.device import DeviceData
from expunge.data.splits import ForgetSpec, SplitPlan, SplitSizes

# importing the loader modules registers them
from expunge.data import digits, synthetic  # noqa: E402,F401  isort: skip
from expunge.data import cifar, imagefolder, hf  # noqa: E402,F401  isort: skip

__all__ = ["DATASETS", "DeviceData", "ForgetSpec", "ImageDataset", "SplitPlan", "SplitSizes",
           "load_dataset", "register_dataset"]
