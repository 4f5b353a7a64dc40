"""Boundary Unlearning: Boundary Shrink (BS) and Boundary Expanding (BE).

Chen, Gao, Zhang, Xu, Wang, Wang, "Boundary Unlearning: Rapid Forgetting of Deep Networks via
Shifting the Decision Space", CVPR 2023. Both methods use the forget set D_f only and move the
decision boundary rather than the weights' whole function.

**Boundary Shrink** ('boundary_shrink'). For every forget sample (x, y) find its nearest *wrong*
class with one FGSM step on the frozen **original** model f_0, in [0, 1] pixel units::

    x' = discretize(clip_[0,1](x + eps * sign(grad_x CE(f_0(x), y))))      eps = ``bound`` = 0.1
    y' = argmax_k f_0(x')_k          (if y' == y: the runner-up, argmax_{k != y} f_0(x')_k)
    L  = CE(f(x), y')                on D_f, fine-tuning all of f

The neighbour labels are recomputed each batch on the (possibly augmented) batch, as the reference
does. The runner-up fallback (``exclude_true``) is our addition: the reference keeps y' = y when the
FGSM step does not cross the boundary, and then trains that sample on its own label. With bound 0.1
that is 44 % of the forget set for ``cnn`` on digits class 3 (10 % for ``mlp``).
``exclude_true=False`` gives the reference behaviour.

**Boundary Expanding** ('boundary_expanding'). Add one "shadow" output unit to the linear head
(a new row of ``fc``, Xavier-normal weights, zero bias), fine-tune the widened network on D_f with
every label set to the shadow class (index C), then prune the shadow row::

    L = CE([f(x), w_s . z(x) + b_s], C)       on D_f;   return f (the original C-way head)

The returned model has exactly the original's ``state_dict`` keys and shapes. The shadow unit is
applied through a forward hook on ``fc`` (it appends one logit to ``fc``'s output), so any model that
calls ``fc`` on the embedding works, whatever else its head does. The hook is active only inside the
training loss: a per-epoch ``ctx.callback`` that evaluates ``_model`` sees the pruned C-way model
(its ``state_dict`` carries the extra ``_boundary_shadow.*`` entries until the run ends).

Defaults (both methods) are the authors' reference code (``boundary_shrink`` / ``boundary_expanding``
in the Boundary-Unlearning repository, copied into SalUn's ``Classification/unlearn/boundary_{sh,ex}.py``):
SGD lr 1e-5, momentum 0.9, no weight decay, no schedule, 10 epochs over D_f, batch 64 (the authors'
``--batch_size``), FGSM bound 0.1. SalUn's scripts sweep lr 1e-6 .. 5e-6 (batch 256) for CIFAR-10 /
SVHN ResNet-18. We keep the reference values as defaults. They are for ResNet-18 on 5,000 forget
images (~800 steps); with a small model and forget set (digits, ~110 forget images, 2 steps an epoch)
the weights barely move at lr 1e-5, e.g. ``mlp`` on digits class 3 keeps 83 % forget-class test
accuracy, and lr ~1e-2 is needed there (``search_space`` spans 1e-6 .. 1e-1). Training runs in train
mode, as the reference does, so BatchNorm running statistics adapt to the forget images: on a BN model
(``cnn`` on digits class 3) that alone takes forget-class test accuracy from 97 % to ~33 % at the
default lr (remaining classes 99 % -> 90 %).
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from expunge import seeds
from expunge.unlearn.space import Domain, choice, loguniform, randint
from expunge.unlearn.base import Batch, MethodConfig, UnlearnContext, UnlearnMethod, register_method, run_loop


class BoundaryConfig(MethodConfig):
    """Shared by BS and BE; defaults from the authors' reference code (see the module docstring)."""

    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(64, ge=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "onecycle", "step"] = "constant"

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-6, 1e-1), "epochs": randint(1, 11)}


class BoundaryShrinkConfig(BoundaryConfig):
    #: FGSM L-inf step in [0, 1] pixel units (reference: 0.1, "hard coding in the paper")
    bound: float = Field(0.1, gt=0, le=1)
    #: if the FGSM neighbour keeps the true label, use the runner-up class (ours; False = reference)
    exclude_true: bool = True

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {**super().search_space(), "bound": choice(0.03, 0.1, 0.3)}


class _ForgetOnly(UnlearnMethod):
    """Common data mix: one epoch = one pass over D_f."""

    def steps_per_epoch(self, ctx: UnlearnContext, cfg: MethodConfig) -> int:
        return max(1, math.ceil(len(ctx.plan.forget) / cfg.batch_size))

    def batches(self, ctx: UnlearnContext, cfg: MethodConfig, epoch: int, gen: torch.Generator) -> Iterator[Batch]:
        for x, y, _ in ctx.loader("forget", cfg.batch_size, augment=cfg.augment, generator=gen):
            yield Batch(forget=(x, y))


def fgsm_neighbour_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float,
                          mean: torch.Tensor, std: torch.Tensor, exclude_true: bool = True) -> torch.Tensor:
    """Nearest-wrong-class labels of normalised images ``x`` by one FGSM step on ``model`` (eval mode).

    The step is taken in [0, 1] pixel space (x * std + mean), clipped to [0, 1] and rounded to the
    1/255 grid, then normalised again, as the reference ``FGSM.perturb`` does.
    """
    with torch.enable_grad():
        x_adv = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv).float(), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
    with torch.no_grad():
        pixels = x.detach() * std + mean + bound * grad.sign()
        pixels = torch.round(pixels.clamp_(0.0, 1.0) * 255.0) / 255.0
        logits = model((pixels - mean) / std).float()
        labels = logits.argmax(1)
        if exclude_true:
            runner_up = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
            labels = torch.where(labels == y, runner_up, labels)
    return labels


@register_method("boundary_shrink")
class BoundaryShrink(_ForgetOnly):
    """Boundary Shrink (Chen et al., CVPR 2023): fine-tune D_f on FGSM nearest-wrong-class labels."""

    Config = BoundaryShrinkConfig

    def prepare(self, ctx: UnlearnContext, cfg: BoundaryShrinkConfig, model: nn.Module) -> None:
        self.probe = copy.deepcopy(ctx.original).to(ctx.device).eval()
        self.probe.requires_grad_(False)

    def loss(self, ctx: UnlearnContext, cfg: BoundaryShrinkConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch.forget
        target = fgsm_neighbour_labels(self.probe, x, y, cfg.bound, ctx.data.mean, ctx.data.std, cfg.exclude_true)
        return F.cross_entropy(model(x).float(), target)


@register_method("boundary_expanding")
class BoundaryExpanding(_ForgetOnly):
    """Boundary Expanding (Chen et al., CVPR 2023): train D_f into a shadow class, then prune it."""

    Config = BoundaryConfig
    _SHADOW = "_boundary_shadow"

    def prepare(self, ctx: UnlearnContext, cfg: BoundaryConfig, model: nn.Module) -> None:
        fc = model.fc
        shadow = nn.Linear(fc.in_features, 1, bias=fc.bias is not None, device=fc.weight.device,
                           dtype=fc.weight.dtype)
        # the reference re-initialises the widened (C+1)-row layer with xavier_normal_ and copies
        # the C old rows back: the shadow row is Xavier-normal with fan (in, C+1), bias 0
        std = math.sqrt(2.0 / (fc.in_features + fc.out_features + 1))
        with torch.no_grad():
            shadow.weight.normal_(0.0, std, generator=_device_generator(ctx, fc.weight.device, salt=seeds.Salt.BOUNDARY_SHADOW))
            if shadow.bias is not None:
                shadow.bias.zero_()
        # registered on the model only while training, so the shared loop's optimizer sees it
        model.add_module(self._SHADOW, shadow)

        def widen(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not self.widened:  # per-epoch callbacks see the pruned (C-way) model
                return output
            extra = F.linear(inputs[0], shadow.weight.to(output.dtype),
                             None if shadow.bias is None else shadow.bias.to(output.dtype))
            return torch.cat([output, extra], dim=-1)

        self.widened = False
        self.hook = fc.register_forward_hook(widen)
        self.num_classes = fc.out_features

    def loss(self, ctx: UnlearnContext, cfg: BoundaryConfig, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, _ = batch.forget
        self.widened = True
        try:
            logits = model(x).float()
        finally:
            self.widened = False
        target = torch.full((len(x),), self.num_classes, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)

    def run(self, ctx: UnlearnContext, cfg: BoundaryConfig) -> nn.Module:
        model = copy.deepcopy(ctx.original).to(ctx.device)
        self.prepare(ctx, cfg, model)
        try:
            model = run_loop(self, ctx, cfg, model)
        finally:  # prune: drop the shadow row, leaving the original C-way head and state_dict
            self.hook.remove()
            delattr(model, self._SHADOW)
        return model


def _device_generator(ctx: UnlearnContext, device: torch.device, salt: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seeds.stream(ctx.seed, salt))
