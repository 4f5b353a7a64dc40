"""Fleet benchmark: the same K models trained two ways in one run, models per hour and the ratio.

``python -m expunge.jobs.bench_fleet --mode cpu`` (digits, ``cnn``, K=32) or ``--mode gpu``
(synthetic CIFAR-shaped 50,000 x 3 x 32 x 32, ``fastnet``, K in {8, 32, 128}); ``--no-ray`` runs
expunge's path in this process (the lent GPU machine has no Ray).

* **baseline**, as the seed code trains: one model at a time, a standard ``DataLoader`` over PIL
  images with per-sample torchvision transforms (random crop with padding, flip, ToTensor, Normalize).
* **expunge**: the fleet path: data held as uint8 tensors on the device, batched augmentation on the
  device, the plain engine; members run as parallel Ray tasks (one CPU each, or ``--gpus-per-model``
  of a GPU) when Ray is available; with ``--ensemble E`` each task trains E members together as one
  batched ensemble (``expunge.train.ensemble``, ``fleet.ensemble`` in a config).

Both train the same architecture on the same samples for the same epochs, batch size and optimizer.
They run in ``--rounds`` interleaved rounds (baseline, expunge, baseline, expunge, ...; each section
trains several models, seconds to minutes of work), so a change in the machine's load falls on both;
Ray starts before the first round and its start-up time is reported apart. Prints models/hour of the
median round for each, that round's ratio with the range over rounds, and peak memory. Never a timed
assertion: a report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import resource
import time
from typing import Any

import numpy as np
import torch

from expunge.config import TrainConfig
from expunge.data import DeviceData, ImageDataset, load_dataset
from expunge.jobs.benchtools import describe_ratio, ratio_summary
from expunge.models import create_model
from expunge.train.engine import resolve_device, seed_everything, train


def _dataset(mode: str) -> tuple[ImageDataset, str]:
    if mode == "cpu":
        return load_dataset("digits"), "cnn"
    return load_dataset("synthetic", n=50_000, num_classes=10, shape=(3, 32, 32), noise=0.35, seed=0), "fastnet"


def baseline_member(ds: ImageDataset, model_name: str, idx: np.ndarray, cfg: TrainConfig, seed: int,
                    device: str, model_kwargs: dict[str, Any] | None = None) -> float:
    """One model the seed-code way: PIL images, per-sample torchvision transforms, a DataLoader.
    Returns the training seconds (the data conversion and model construction before it excluded)."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    c, h, w = ds.in_shape
    tf = transforms.Compose([
        transforms.RandomCrop((h, w), padding=ds.crop_pad) if ds.crop_pad else transforms.Lambda(lambda x: x),
        *( [transforms.RandomHorizontalFlip()] if ds.flip else []),
        transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])
    images = ds.images[idx].permute(0, 2, 3, 1).numpy()
    labels = ds.labels[idx].numpy()

    class PILDataset(Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            img = Image.fromarray(images[i].squeeze(-1) if c == 1 else images[i])
            return tf(img), int(labels[i])

    seed_everything(seed)
    model = create_model(model_name, ds.num_classes, ds.in_shape, **(model_kwargs or {})).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=True)
    loader = DataLoader(PILDataset(), batch_size=cfg.batch_size, shuffle=True, num_workers=0)
    t0 = time.perf_counter()
    model.train()
    for _ in range(cfg.epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def fleet_member(data: DeviceData, model_name: str, idx: np.ndarray, cfg: TrainConfig, seed: int,
                 model_kwargs: dict[str, Any] | None = None) -> float:
    """One model on expunge's path on data already on the device: seeded construction, then
    :func:`expunge.train.engine.train`. Returns the training seconds."""
    ds = data.dataset
    seed_everything(seed)
    model = create_model(model_name, ds.num_classes, ds.in_shape, **(model_kwargs or {})).to(data.device)
    t0 = time.perf_counter()
    train(model, data, idx, cfg, seed=seed)
    if data.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def fleet_ensemble(data: DeviceData, model_name: str, idx: np.ndarray, cfg: TrainConfig, seeds: list[int],
                   model_kwargs: dict[str, Any] | None = None) -> float:
    """``len(seeds)`` models trained together by :func:`expunge.train.ensemble.train_ensemble` (what a
    fleet task runs with ``fleet.ensemble`` > 1), each seeded as :func:`fleet_member` seeds it.
    Returns the training seconds."""
    from expunge.train.ensemble import train_ensemble

    ds = data.dataset
    models = []
    for seed in seeds:
        seed_everything(seed)
        models.append(create_model(model_name, ds.num_classes, ds.in_shape, **(model_kwargs or {})).to(data.device))
    t0 = time.perf_counter()
    train_ensemble(models, data, [idx] * len(seeds), cfg, seeds)
    if data.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def expunge_member(mode: str, idx: np.ndarray, cfg: dict[str, Any], seed: int, device: str) -> float:
    """One model on expunge's path (the same function a fleet member task runs): load, then train."""
    ds, model_name = _dataset(mode)
    return fleet_member(DeviceData(ds, device, channels_last=True), model_name, idx, TrainConfig(**cfg), seed)


def expunge_ensemble(mode: str, idx: np.ndarray, cfg: dict[str, Any], seeds: list[int], device: str) -> float:
    """Several models on expunge's batched-ensemble path (what a fleet task runs with fleet.ensemble > 1)."""
    ds, model_name = _dataset(mode)
    return fleet_ensemble(DeviceData(ds, device, channels_last=True), model_name, idx, TrainConfig(**cfg), seeds)


def run(mode: str, k: int, epochs: int, use_ray: bool, gpus_per_model: float, baseline_k: int | None,
        ensemble: int = 1, rounds: int = 3) -> dict:
    """``rounds`` interleaved rounds of (the baseline's models, expunge's K-model fleet); models per
    hour of each, per round, and the median round's ratio with the range."""
    ds, model_name = _dataset(mode)
    device = str(resolve_device("auto"))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.permutation(len(ds))[: int(0.8 * len(ds))])
    cfg = TrainConfig(epochs=epochs, batch_size=64 if mode == "cpu" else 512, lr=0.05, augment=True)
    # the baseline runs sequentially, so timing a subset of its K models estimates its rate fairly
    nb = min(k, baseline_k or k)
    if ensemble > 1:
        fn = expunge_ensemble
        calls = [{"mode": mode, "idx": idx, "cfg": cfg.model_dump(), "seeds": list(range(j, min(k, j + ensemble))),
                  "device": device} for j in range(0, k, ensemble)]
    else:
        fn = expunge_member
        calls = [{"mode": mode, "idx": idx, "cfg": cfg.model_dump(), "seed": i, "device": device} for i in range(k)]
    ray_start_s = None
    if use_ray:
        from expunge.runtime import init_ray, run_tasks

        t0 = time.perf_counter()
        init_ray()  # once, before the rounds: paid once per run, not per fleet
        ray_start_s = time.perf_counter() - t0
    base_rates, fleet_rates = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(nb):
            baseline_member(ds, model_name, idx, cfg, i, device)
        base_rates.append(round(3600 * nb / (time.perf_counter() - t0), 1))
        t0 = time.perf_counter()
        if use_ray:
            run_tasks(fn, calls, num_cpus=1, num_gpus=gpus_per_model if device != "cpu" else 0,
                      desc="expunge fleet", unit="task")
        else:
            for kw in calls:
                fn(**kw)
        fleet_rates.append(round(3600 * k / (time.perf_counter() - t0), 1))
    summary = ratio_summary(fleet_rates, base_rates)
    i = summary["median_round"]
    out = {"mode": mode, "device": device, "K": k, "baseline_models_timed": nb, "epochs": epochs,
           "train_samples": len(idx), "ray": use_ray, "ensemble": ensemble, "threads": torch.get_num_threads(),
           "baseline_models_per_hour": base_rates[i], "expunge_models_per_hour": fleet_rates[i], **summary,
           "rounds": rounds, "baseline_rates": base_rates, "expunge_rates": fleet_rates,
           "ray_start_s": None if ray_start_s is None else round(ray_start_s, 2),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "date": datetime.date.today().isoformat()}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expunge.jobs.bench_fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--k", type=int, nargs="+", default=None, help="fleet sizes (cpu: 32; gpu: 8 32 128)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (cpu: 10; gpu: 5)")
    p.add_argument("--baseline-k", type=int, default=None, help="baseline models actually timed (default: K)")
    p.add_argument("--no-ray", action="store_true", help="expunge's path in this process, without Ray")
    p.add_argument("--gpus-per-model", type=float, default=0.25, help="GPU share of each task")
    p.add_argument("--ensemble", type=int, default=1,
                   help="models trained together per task as one batched (vmap) ensemble (default 1: one per task)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of (baseline, expunge); the median round's ratio is reported (default 3)")
    args = p.parse_args(argv)
    if args.ensemble < 1:
        p.error("--ensemble must be >= 1")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    ks = args.k or ([32] if args.mode == "cpu" else [8, 32, 128])
    epochs = args.epochs or (10 if args.mode == "cpu" else 5)
    for k in ks:
        if k < 1:
            p.error("--k must be >= 1")
        res = run(args.mode, k, epochs, not args.no_ray, args.gpus_per_model, args.baseline_k, args.ensemble,
                  args.rounds)
        print(json.dumps(res), flush=True)
        print(f"K={k}: baseline {res['baseline_models_per_hour']:.0f} models/h, expunge "
              f"{res['expunge_models_per_hour']:.0f} models/h, ratio {describe_ratio(res)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
