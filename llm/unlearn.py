"""Unlearning for causal language models: gradient ascent, gradient difference, NPO, SimNPO and RMU.

Each method is a loss over a forget batch F and a retain batch R, registered in :data:`LLM_METHODS`
(ℓ̄ = mean token NLL of a batch, NLL(x) = summed token NLL of a sequence, |y| = its number of target
tokens, θ_ref = the model before unlearning, frozen; h^ℓ(x)_t = the output of decoder block ℓ at token t,
d its width):

* ``ga`` (gradient ascent): L = −γ · ℓ̄_θ(F). The retain set is not used.
* ``grad_diff`` (gradient difference): L = −γ · ℓ̄_θ(F) + α · ℓ̄_θ(R).
* ``npo`` (Negative Preference Optimization, Zhang et al. 2024, arXiv 2404.05868, with the retain
  term of OpenUnlearning's NPO, which extends GradDiff):
  L = γ · mean_{x∈F} (2/β) log(1 + (π_θ(x)/π_ref(x))^β) + α · ℓ̄_θ(R)
    = −γ · mean (2/β) logsigmoid(β (NLL_θ(x) − NLL_ref(x))) + α · ℓ̄_θ(R).
* ``simnpo`` (SimNPO, Fan et al. 2024, arXiv 2410.07163: its SimNPO loss plus the retain NLL term;
  no reference model):
  L = −γ · mean_{x∈F} (2/β_s) logsigmoid(−(β_s/|y|) log π_θ(y|x) − m) + α · ℓ̄_θ(R)
    = −γ · mean (2/β_s) logsigmoid(β_s · NLL_θ(x)/|y| − m) + α · ℓ̄_θ(R),
  β_s = ``simnpo_beta``, m = ``simnpo_margin`` (the paper's reward margin, which it calls γ).
* ``rmu`` (Representation Misdirection for Unlearning, Li et al. 2024, the WMDP paper, arXiv 2403.03218):
  L = γ · mean_{x∈F} mean_t (1/d)‖h_θ^ℓ(x)_t − c·u‖² + α_rmu · mean_{x∈R} mean_t (1/d)‖h_θ^ℓ(x)_t − h_ref^ℓ(x)_t‖²,
  ℓ = ``rmu_layer``, c = ``rmu_steering``, α_rmu = ``rmu_alpha``, u a fixed random unit vector (see
  :func:`rmu`); by default only the MLP output projections of blocks ℓ−2..ℓ are updated.

Defaults follow OpenUnlearning (``src/trainer/unlearn/grad_diff.py``: γ = α = 1, retain loss NLL)
and the NPO paper (β = 0.1); lr, batch size and the number of epochs are the caller's (OpenUnlearning's
TOFU runs use lr 1e-5 for 7B models; a tiny model from scratch needs ~1e-3). One name per
hyperparameter: β (``beta``) is NPO's and multiplies a sequence log-ratio, SimNPO's β_s multiplies a
per-token mean NLL, so it is its own field with its own default (``simnpo_beta`` = 4.5); RMU's retain
weight multiplies an activation distance, not an NLL, so it is ``rmu_alpha`` (1200), not ``alpha``. γ is
the weight of the forget term in every method; its default depends on the method
(:data:`METHOD_DEFAULTS`: SimNPO's authors weight it 0.125), applied only when γ is not given.

Data: each forget / retain item is a text (every token a target) or a ``(prompt, answer)`` pair, the
TOFU convention of :mod:`expunge.llm.qa_scoring`: tokens(prompt, with the tokenizer's special tokens) +
tokens(answer, without), and only the answer's tokens are targets (NLLs, |y|, RMU's token mean).

LoRA (``lora=True``) trains low-rank adapters through ``peft`` (optional: ``pip install
'expunge[lora]'``; a clear error otherwise) and merges them into the weights at the end, so the
result is a plain Hugging Face model. The reference (NPO's π_ref, RMU's frozen activations) is then
the base model with the adapters disabled (no second copy in memory); otherwise it is a frozen copy
of the model, or a model passed in, which must use the same tokenizer (checked).

Epochs and checkpoints: epoch e ends after s_e = min(steps, ⌈e·|F|/B⌉) steps, the step count of a run
with ``epochs=e``; the loop has no schedule, so the model at s_e is what such a run returns (same seed).
``unlearn_lm(on_epoch=...)`` hands each epoch's model and the loop's state (optimizer, RNG, data
order) to the caller, and ``resume=`` that state continues the run exactly. ``shard=(rank, world)``
trains on rows rank::world of every batch (data parallel; the batches are the single-process ones)
and ``prepare`` wraps the model once its trainable parameters are chosen: in DDP, or sharded in place
by FSDP (:mod:`expunge.train.sharding`), in which case every epoch's checkpoint gathers the full
weights and optimizer state on rank 0 (collectives every rank enters) and hands rank 0 a plain model.

Search spaces (for sweeps): :func:`search_space` gives each method's domains (lr, epochs and the
method's own knobs, LoRA rank when LoRA is on), in the vision methods' style
(:mod:`expunge.unlearn.space`); every key is a field of :class:`LLMUnlearnConfig`.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from expunge.errors import ConfigError, ExpungeError
from expunge.llm.models import check_same_tokenizer, encode_texts, pad_id
from expunge.registry import Registry
from expunge.train.engine import run_steps
from expunge.train.optim import OptimizerSpec, build_optimizer
from expunge.train.sharding import (gather_model_state, gather_optimizer_state, is_sharded, load_optimizer_state,
                                    unsharded_class)
from expunge.unlearn.space import Domain, choice, loguniform, randint, uniform

LLM_METHODS: Registry = Registry("LLM unlearning method")

#: a forget / retain item: a text, or a (prompt, answer) pair whose answer tokens alone are targets
Item = Union[str, tuple[str, str]]

#: defaults of shared fields that differ by method, used only when the field is not given. SimNPO's
#: forget weight: 0.125 with β_s = 4.5 in the authors' TOFU forget10 recipe (OPTML-Group/Unlearn-Simple,
#: ``TOFU/README.md``: ``npo_coeff=0.125 beta=4.5``) and in OpenUnlearning's ``configs/trainer/SimNPO.yaml``.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"simnpo": {"gamma": 0.125}}


class LLMUnlearnConfig(BaseModel):
    """Settings of one LLM unlearning run (unknown keys and bad values are ConfigErrors).

    Shared: γ (``gamma``) weights the forget term, α (``alpha``) the retain NLL term; the method fields
    carry their paper's defaults (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    method: str = "npo"
    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(1.0, gt=0, description="passes over the forget set (fractions allowed)")
    steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(8, ge=1)
    max_length: int | None = Field(None, ge=2)
    beta: float = Field(0.1, gt=0, description="NPO's β (NPO paper)")
    alpha: float = Field(1.0, ge=0, description="weight of the retain NLL term (grad_diff, npo, simnpo)")
    gamma: float = Field(1.0, ge=0, description="weight of the forget term (every method; simnpo: 0.125 "
                                                "unless given, see METHOD_DEFAULTS)")
    simnpo_beta: float = Field(4.5, gt=0, description="SimNPO's β (authors' TOFU forget10 recipe, OpenUnlearning)")
    simnpo_margin: float = Field(0.0, description="SimNPO's reward margin (the paper's γ; 0 in the TOFU recipe)")
    rmu_layer: int = Field(7, ge=0, description="decoder block whose output RMU steers, 0-based (WMDP: 7)")
    rmu_steering: float = Field(6.5, gt=0, description="RMU's steering coefficient c (WMDP's Zephyr-7B run)")
    rmu_alpha: float = Field(1200.0, ge=0, description="weight of RMU's retain activation term (WMDP's Zephyr-7B run)")
    rmu_params: Literal["mlp_out", "mlp", "all"] = Field(
        "mlp_out", description="what RMU updates: the MLP output projection weights of blocks ℓ−2..ℓ (WMDP's "
                               "code), all MLP parameters of those blocks, or every parameter")
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    lora: bool = False
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | None = None
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        # a field the caller sets always wins; only absent ones take the method's default
        if isinstance(data, dict):
            data = {**METHOD_DEFAULTS.get(str(data.get("method", "npo")), {}), **data}
        return data

    @field_validator("method")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in LLM_METHODS:
            raise ValueError(LLM_METHODS.unknown_message(v))
        return v

    @classmethod
    def search_space(cls, method: str, *, lora: bool = False, num_layers: int | None = None) -> dict[str, Domain]:
        """The sweep domains of ``method`` (see :func:`search_space`)."""
        return search_space(method, lora=lora, num_layers=num_layers)


def make_config(**kw: Any) -> LLMUnlearnConfig:
    from pydantic import ValidationError

    try:
        return LLMUnlearnConfig(**kw)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise ConfigError(f"llm unlearning config: {msgs}") from None


# --- batches and losses ----------------------------------------------------------------------
def _encode_items(tokenizer: Any, items: Sequence[Item]) -> list[tuple[list[int], int]]:
    """(token ids, number of leading non-target tokens) per item: 0 for a text, the prompt's token
    count for a (prompt, answer) pair (the :mod:`expunge.llm.qa_scoring` tokenisation)."""
    texts = [(k, t) for k, t in enumerate(items) if isinstance(t, str)]
    pairs = [(k, t) for k, t in enumerate(items) if not isinstance(t, str)]
    out: list[tuple[list[int], int]] = [([], 0)] * len(items)
    if texts:  # a Hugging Face tokenizer fails on an empty list (a batch of pairs only)
        for (k, _), ids in zip(texts, encode_texts(tokenizer, [t for _, t in texts], add_special_tokens=True)):
            out[k] = (ids, 0)
    if pairs:
        heads = encode_texts(tokenizer, [p for _, (p, _) in pairs], add_special_tokens=True)
        tails = encode_texts(tokenizer, [a for _, (_, a) in pairs], add_special_tokens=False)
        for (k, _), h, t in zip(pairs, heads, tails):
            out[k] = (h + t, len(h))
    return out


def make_batch(tokenizer: Any, texts: Sequence[Item], max_length: int | None,
               device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (−100 at padding, and at the prompt tokens of
    a ``(prompt, answer)`` item, so only answer tokens are targets)."""
    enc = _encode_items(tokenizer, texts)
    if max_length:
        enc = [(s[:max_length], n) for s, n in enc]
    for k, (s, n) in enumerate(enc):
        if n and len(s) <= n:
            raise ExpungeError(f"llm unlearning: item {k} has no answer token left within max_length={max_length} "
                               f"(prompt of {n} tokens)")
    width = max(len(s) for s, _ in enc)
    x = torch.full((len(enc), width), pad_id(tokenizer), dtype=torch.long)
    att = torch.zeros_like(x)
    labels = torch.full_like(x, -100)
    for i, (s, n) in enumerate(enc):
        x[i, :len(s)] = torch.tensor(s)
        att[i, :len(s)] = 1
        labels[i, n:len(s)] = x[i, n:len(s)]
    return {"input_ids": x.to(device), "attention_mask": att.to(device), "labels": labels.to(device)}


def sequence_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B] summed token NLL of each sequence (targets where labels != −100)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                          reduction="none").view(labels.shape)
    return nll.sum(1)


def target_counts(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B] |y|: the number of target tokens of each sequence (what :func:`sequence_nll` sums over)."""
    return (batch["labels"][:, 1:] != -100).sum(1)


def mean_token_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """ℓ̄: mean token NLL over every target of the batch (the HF ``labels=`` loss)."""
    n = target_counts(batch).sum().clamp_min(1)
    return sequence_nll(model, batch).sum() / n


class _Ctx:
    """What a method's loss may use: the config, the frozen reference's NLL and its block-ℓ output."""

    def __init__(self, cfg: LLMUnlearnConfig, ref_nll: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None,
                 ref_hidden: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None):
        self.cfg = cfg
        self.ref_nll = ref_nll
        self.ref_hidden = ref_hidden


def register_method(name: str, needs_retain: bool, needs_reference: bool, *, retain_weight: str = "alpha",
                    search_space: Callable[[int | None], dict[str, Domain]] | None = None) -> Callable:
    """Register a loss ``fn(model, forget, retain, ctx)``. ``retain_weight`` names the config field
    weighting its retain term (0 = no retain set needed); ``search_space(num_layers)`` its own sweep
    domains beyond lr and epochs."""
    return LLM_METHODS.register(name, needs_retain=needs_retain, needs_reference=needs_reference,
                                retain_weight=retain_weight, own_space=search_space or (lambda num_layers: {}))


# --- search spaces ---------------------------------------------------------------------------
def search_space(method: str, *, lora: bool = False, num_layers: int | None = None) -> dict[str, Domain]:
    """Sweep domains of one method, keyed by :class:`LLMUnlearnConfig` field.

    Every method: lr log-uniform over [1e-6, 1e-3] (OpenUnlearning's 1e-5 for 7B models up to the ~1e-3
    a tiny model needs) and epochs 1..10 (OpenUnlearning's TOFU runs use 10); the method's own knobs
    (its ``register_method(search_space=...)``); LoRA's rank when ``lora``. ``num_layers`` sizes RMU's
    layer choices to the model (see :func:`_rmu_space`).
    """
    fn = LLM_METHODS.get(method)
    space = {"lr": loguniform(1e-6, 1e-3), "epochs": randint(1, 11), **fn.own_space(num_layers)}
    if lora:
        space["lora_r"] = choice(4, 8, 16, 32)
    return space


def _grad_diff_space(num_layers: int | None) -> dict[str, Domain]:
    return {"alpha": loguniform(0.1, 10.0)}


def _npo_space(num_layers: int | None) -> dict[str, Domain]:
    return {"beta": choice(0.05, 0.1, 0.2, 0.5)}


def _simnpo_space(num_layers: int | None) -> dict[str, Domain]:
    # the authors' β_s: 2.5 / 4.5 on TOFU, 0.7 / 0.75 on MUSE; margins 0 (TOFU) to small positive values
    return {"simnpo_beta": loguniform(0.5, 10.0), "simnpo_margin": uniform(0.0, 2.0)}


def _rmu_space(num_layers: int | None) -> dict[str, Domain]:
    """Layers at the depths 5/32, 7/32 and 9/32 of the model (WMDP steers layer 7 of 32-layer 7B
    models), or 5, 7, 9 when the depth is not given; c log-uniform around WMDP's 6.5."""
    if num_layers is None:
        layers = [5, 7, 9]
    else:
        layers = sorted({min(num_layers - 1, max(0, int(f * num_layers / 32 + 0.5))) for f in (5, 7, 9)})
    return {"rmu_layer": choice(*layers), "rmu_steering": loguniform(1.0, 100.0)}


# --- the methods -----------------------------------------------------------------------------
@register_method("ga", needs_retain=False, needs_reference=False)
def gradient_ascent(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """Gradient ascent on the forget set: −γ · mean token NLL(F)."""
    return -ctx.cfg.gamma * mean_token_nll(model, forget)


@register_method("grad_diff", needs_retain=True, needs_reference=False, search_space=_grad_diff_space)
def grad_diff(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """Gradient difference: −γ · NLL(F) + α · NLL(R) (mean token NLLs)."""
    loss = -ctx.cfg.gamma * mean_token_nll(model, forget)
    if ctx.cfg.alpha > 0 and retain is not None:
        loss = loss + ctx.cfg.alpha * mean_token_nll(model, retain)
    return loss


@register_method("npo", needs_retain=True, needs_reference=True, search_space=_npo_space)
def npo(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """NPO: −(2/β) logsigmoid(β (NLL_θ − NLL_ref)) on F, plus α · NLL(R) (Zhang et al. 2024)."""
    beta = ctx.cfg.beta
    with torch.no_grad():
        ref = ctx.ref_nll(forget)
    cur = sequence_nll(model, forget)
    forget_loss = -(2.0 / beta) * F.logsigmoid(beta * (cur - ref)).mean()
    loss = ctx.cfg.gamma * forget_loss
    if ctx.cfg.alpha > 0 and retain is not None:
        loss = loss + ctx.cfg.alpha * mean_token_nll(model, retain)
    return loss


def simnpo_forget_loss(nll: torch.Tensor, n_targets: torch.Tensor, beta: float, margin: float) -> torch.Tensor:
    """SimNPO's forget loss from summed NLLs [B] and target counts |y| [B] (Fan et al. 2024):
    mean −(2/β) logsigmoid(β · NLL/|y| − margin), the paper's −(2/β) log σ(−(β/|y|) log π_θ(y|x) − γ)
    with its margin γ = ``margin``."""
    per_token = nll / n_targets.clamp_min(1).to(nll.dtype)
    return -(2.0 / beta) * F.logsigmoid(beta * per_token - margin).mean()


@register_method("simnpo", needs_retain=True, needs_reference=False, search_space=_simnpo_space)
def simnpo(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """SimNPO (Fan et al. 2024, arXiv 2410.07163): reference-free, length-normalised NPO.

    L = γ · mean_{x∈F} −(2/β_s) logsigmoid(β_s · NLL_θ(x)/|y| − m) + α · ℓ̄_θ(R), β_s = ``simnpo_beta``
    (4.5), m = ``simnpo_margin`` (0), γ = 0.125 and α = 1 unless given: the authors' TOFU forget10
    recipe (OPTML-Group/Unlearn-Simple) and OpenUnlearning's ``SimNPO.yaml``. The margin enters as in
    the paper's formula (subtracted after scaling by β_s); the authors' code and OpenUnlearning subtract
    a δ before scaling, δ = m/β_s (the same loss at their default 0).
    """
    cfg = ctx.cfg
    forget_loss = simnpo_forget_loss(sequence_nll(model, forget), target_counts(forget), cfg.simnpo_beta,
                                     cfg.simnpo_margin)
    loss = cfg.gamma * forget_loss
    if cfg.alpha > 0 and retain is not None:
        loss = loss + cfg.alpha * mean_token_nll(model, retain)
    return loss


# --- RMU: block outputs, the random direction, the updated parameters --------------------------
_BLOCK_LISTS = ("h", "layers", "blocks", "block")  # GPT-2 / Falcon / Bloom; LLaMA / Mistral / NeoX / OPT; others
_MLP_NAMES = ("mlp", "feed_forward", "ffn")
_MLP_OUT_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc_out", "fc2", "w2")


def layer_count(model: torch.nn.Module) -> int:
    """The number of decoder blocks (``config.num_hidden_layers``; GPT-2's ``n_layer`` maps to it)."""
    while not hasattr(model, "config") and isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module  # a DistributedDataParallel wrapper has no config; its module does
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(n, int):
        raise ConfigError(f"llm unlearning config: {type(model).__name__} does not state its number of layers "
                          "(config.num_hidden_layers), which rmu_layer indexes")
    return n


def check_rmu_layer(cfg: LLMUnlearnConfig, n_layers: int) -> None:
    """One-line ConfigError unless ``cfg.rmu_layer`` indexes one of ``n_layers`` decoder blocks; cheap,
    so a job can call it from the model's config before loading weights."""
    if cfg.method == "rmu" and not 0 <= cfg.rmu_layer < n_layers:
        raise ConfigError(f"llm unlearning config: rmu_layer {cfg.rmu_layer} is out of range for a model with "
                          f"{n_layers} layers (0..{n_layers - 1})")


def _decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's list of decoder blocks: the first ModuleList named like one (``transformer.h``,
    ``model.layers``, ``gpt_neox.layers``, ``model.decoder.layers`` ...) with one entry per layer."""
    n = layer_count(model)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n and name.rsplit(".", 1)[-1] in _BLOCK_LISTS:
            return mod
    return None


def layer_hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """[B, T, d] output of decoder block ``layer`` (0-based): what WMDP's code caches with a forward hook
    on ``model.model.layers[layer]``.

    In Hugging Face's ``output_hidden_states`` tuple this is entry ``layer + 1`` (entry 0 is the
    embeddings) for every block but the last, whose entry has the final norm applied; the hook gives
    the block's own output for every block. A model whose block list is not found falls back to that
    tuple entry.
    """
    blocks = _decoder_blocks(model)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if blocks is None:
        return model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
    seen: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: Any, output: Any) -> None:
        seen.append(output[0] if isinstance(output, (tuple, list)) else output)

    handle = blocks[layer].register_forward_hook(keep)
    try:
        model(**inputs)
    finally:
        handle.remove()
    return seen[-1]


def rmu_direction(dim: int, seed: int) -> torch.Tensor:
    """[dim] u: uniform [0, 1) entries from a generator seeded with ``seed``, scaled to unit L2 norm
    (WMDP's ``torch.rand`` then divide by the norm); the same u for every step of a run."""
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (u / u.norm()).float()


def activation_distance(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over sequences of mean over masked tokens of (1/d)‖h_t − target_t‖² (``target`` broadcasts).

    The 1/d is WMDP's: its code takes ``mse_loss`` (a mean over hidden units), and its c and α were
    tuned with it; the paper writes the squared norm. Tokens outside ``mask`` (padding, prompts of
    (prompt, answer) items) do not count, as in OpenUnlearning's RMU.
    """
    per_token = (h.float() - target.float()).pow(2).mean(-1)
    m = mask.to(per_token.dtype)
    return ((per_token * m).sum(1) / m.sum(1).clamp_min(1)).mean()


def _target_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return batch["labels"] != -100


@register_method("rmu", needs_retain=True, needs_reference=True, retain_weight="rmu_alpha",
                 search_space=_rmu_space)
def rmu(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """RMU (Li et al. 2024, WMDP, arXiv 2403.03218): steer block ℓ's output on F to c·u, keep it on R.

    L = γ · mean_{x∈F} mean_t (1/d)‖h_θ^ℓ(x)_t − c·u‖² + α_rmu · mean_{x∈R} mean_t (1/d)‖h_θ^ℓ(x)_t −
    h_ref^ℓ(x)_t‖² (:func:`activation_distance`), ℓ = ``rmu_layer`` (7), c = ``rmu_steering`` (6.5),
    α_rmu = ``rmu_alpha`` (1200): the values of WMDP's Zephyr-7B run (its README's command); u =
    :func:`rmu_direction` (seeded by ``seed``); h_ref = the model before unlearning. Only block ℓ−2..ℓ's
    MLP output projections are updated by default (``rmu_params``, see :func:`rmu_parameters`).

    The trained model runs in train mode and the frozen one in eval mode, as in WMDP's code; a model
    with dropout (GPT-2's 0.1) therefore starts with a nonzero retain distance, which WMDP's models
    (no dropout) do not have.
    """
    cfg = ctx.cfg
    h = layer_hidden(model, forget, cfg.rmu_layer)
    c_u = cfg.rmu_steering * rmu_direction(h.shape[-1], cfg.seed).to(h.device)
    loss = cfg.gamma * activation_distance(h, c_u, _target_mask(forget))
    if cfg.rmu_alpha > 0 and retain is not None:
        h_r = layer_hidden(model, retain, cfg.rmu_layer)
        with torch.no_grad():
            h_ref = ctx.ref_hidden(retain)
        loss = loss + cfg.rmu_alpha * activation_distance(h_r, h_ref.to(h_r.device), _target_mask(retain))
    return loss


def rmu_parameters(model: torch.nn.Module, cfg: LLMUnlearnConfig) -> tuple[list[str] | None, str]:
    """Names of the parameters RMU updates (None = all) and why.

    ``mlp_out`` (default): the weight of the MLP's output projection in blocks max(0, ℓ−2)..ℓ, as WMDP's
    code (``layer_ids 5,6,7``, ``param_ids 6`` = Zephyr's ``mlp.down_proj.weight``; GPT-2's
    ``mlp.c_proj.weight``); ``mlp``: every MLP parameter of those blocks; ``all``: every parameter (as
    OpenUnlearning's ``RMU.yaml``). Where the blocks or their MLP cannot be found, every parameter,
    since updating nothing would not unlearn.
    """
    if cfg.rmu_params == "all":
        return None, "all parameters (rmu_params=all)"
    blocks = _decoder_blocks(model)
    if blocks is None:
        return None, "all parameters (no decoder block list found)"
    block_names = {id(m): n for n, m in model.named_modules()}
    names: list[str] = []
    for i in range(max(0, cfg.rmu_layer - 2), cfg.rmu_layer + 1):
        mlp = next((getattr(blocks[i], a) for a in _MLP_NAMES if isinstance(getattr(blocks[i], a, None),
                                                                              torch.nn.Module)), None)
        if mlp is None:
            return None, f"all parameters (block {i} has no MLP named {', '.join(_MLP_NAMES)})"
        prefix = block_names[id(mlp)]
        if cfg.rmu_params == "mlp":
            names += [f"{prefix}.{n}" for n, _ in mlp.named_parameters()]
            continue
        out = next((a for a in _MLP_OUT_NAMES if getattr(getattr(mlp, a, None), "weight", None) is not None), None)
        if out is None:
            return None, (f"all parameters (block {i}'s MLP has no output projection named "
                          f"{', '.join(_MLP_OUT_NAMES)})")
        names.append(f"{prefix}.{out}.weight")
    return names, f"{cfg.rmu_params} of blocks {max(0, cfg.rmu_layer - 2)}..{cfg.rmu_layer}"


# --- the loop --------------------------------------------------------------------------------
def _wrap_lora(model: torch.nn.Module, cfg: LLMUnlearnConfig) -> torch.nn.Module:
    try:
        import peft
    except ImportError:
        raise ExpungeError("lora=true needs the optional package 'peft' (pip install 'expunge[lora]')") from None
    targets = cfg.lora_targets
    if targets is None:
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in ("c_attn", "q_proj", "k_proj", "v_proj", "o_proj", "query_key_value") if t in names]
        if not targets:
            raise ExpungeError("lora=true: no known attention projection in this model; set lora_targets")
    lcfg = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                           target_modules=targets, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lcfg)


def _blank(item: Item) -> bool:
    parts = (item,) if isinstance(item, str) else tuple(item)
    if len(parts) not in (1, 2) or not all(isinstance(p, str) for p in parts):
        raise ExpungeError(f"llm unlearning: an item is a text or a (prompt, answer) pair, got {item!r:.80}")
    return any(not p.strip() for p in parts)


def check_inputs(cfg: LLMUnlearnConfig, forget: Sequence[Item], retain: Sequence[Item],
                 model: torch.nn.Module | None = None) -> None:
    """User errors before any compute: empty sets, LoRA without peft, and (given the model) an RMU
    layer out of range."""
    fn = LLM_METHODS.get(cfg.method)
    if not forget:
        raise ExpungeError("llm unlearning: the forget set is empty")
    if any(_blank(t) for t in forget) or any(_blank(t) for t in retain):
        raise ExpungeError("llm unlearning: empty text in the forget or retain set")
    weight = fn.retain_weight
    if fn.needs_retain and getattr(cfg, weight) > 0 and not retain:
        raise ExpungeError(f"llm unlearning: method {cfg.method!r} needs a retain set (or {weight}=0)")
    if cfg.lora and not has_peft():
        raise ExpungeError("lora=true needs the optional package 'peft' (pip install 'expunge[lora]')")
    if model is not None and cfg.method == "rmu":
        check_rmu_layer(cfg, layer_count(model))


def has_peft() -> bool:
    try:
        import peft
    except ImportError:
        return False
    return peft is not None


#: ``on_epoch(epoch, model, state)``: the epoch's model (eval mode; under LoRA a merged copy) and the
#: loop's state, which ``resume=`` accepts; both are live objects that the next step changes, so the
#: callback saves (or copies) what it keeps before it returns
EpochCallback = Callable[[int, torch.nn.Module, dict[str, Any]], None]


def unlearn_lm(model: torch.nn.Module, tokenizer: Any, forget: Sequence[Item], retain: Sequence[Item] = (),
               cfg: LLMUnlearnConfig | None = None, *, ref_model: torch.nn.Module | None = None,
               ref_tokenizer: Any = None, log: Callable[[str], None] | None = None,
               on_epoch: EpochCallback | None = None, resume: dict[str, Any] | None = None,
               shard: tuple[int, int] = (0, 1),
               prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
               ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Unlearn ``forget`` from ``model`` (in place for full fine-tuning); returns ``(model, stats)``.

    Items are texts or ``(prompt, answer)`` pairs (module docstring). ``steps`` = cfg.steps or
    ceil(epochs · |F| / batch_size); each step takes the next shuffled forget batch and a random retain
    batch of the same size. RMU without LoRA freezes all but :func:`rmu_parameters` for the run and
    restores every ``requires_grad`` flag afterwards; with LoRA the adapters are what trains.

    ``on_epoch`` is called after each epoch's last step (:func:`epoch_ends`). ``resume`` is the
    ``state`` an earlier call passed to ``on_epoch``, with ``model`` holding that epoch's weights: the
    optimizer, both RNGs and the data order are restored and the loop continues at the next step, so
    the result equals an uninterrupted run. A resumed run needs the frozen reference passed as
    ``ref_model`` (the model is no longer the one before unlearning) and full fine-tuning (a merged
    LoRA checkpoint has no adapters to continue). ``shard`` and ``prepare``: module docstring.
    """
    cfg = cfg or LLMUnlearnConfig()
    if resume is not None and cfg.lora:
        raise ExpungeError("llm unlearning: a LoRA run cannot resume from a checkpoint (its adapters were "
                           "merged); restart it")
    if resume is not None and LLM_METHODS.get(cfg.method).needs_reference and ref_model is None:
        raise ExpungeError(f"llm unlearning: resuming {cfg.method} needs the model before unlearning as ref_model")
    check_inputs(cfg, forget, retain, model)
    method = LLM_METHODS.get(cfg.method)
    if ref_model is not None:
        check_same_tokenizer(tokenizer, ref_tokenizer if ref_tokenizer is not None else tokenizer,
                             f"{cfg.method} reference model")
        if cfg.method == "rmu":
            check_rmu_layer(cfg, layer_count(ref_model))
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    # every requires_grad flag as the caller left it (by name: LoRA's merge returns the same names),
    # restored at the end since the model is the caller's
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    if cfg.lora:
        model = _wrap_lora(model, cfg)
    ref_nll = ref_hidden = None
    if method.needs_reference:
        if ref_model is not None:
            ref = ref_model.eval()
            on_ref = lambda fn: fn(ref)  # noqa: E731
        elif cfg.lora:
            def on_ref(fn):
                with model.disable_adapter():
                    return fn(model)
        else:
            ref = copy.deepcopy(model).eval()
            for p in ref.parameters():
                p.requires_grad_(False)
            on_ref = lambda fn: fn(ref)  # noqa: E731
        ref_nll = lambda b: on_ref(lambda m: sequence_nll(m, b))  # noqa: E731
        ref_hidden = lambda b: on_ref(lambda m: layer_hidden(m, b, cfg.rmu_layer))  # noqa: E731
    ctx = _Ctx(cfg, ref_nll, ref_hidden)

    # RMU's parameter restriction goes through requires_grad, so no gradient is even computed for the
    # frozen rest (a 7B model's full gradient would double its memory)
    trained_note = None
    if cfg.method == "rmu" and not cfg.lora:
        names, trained_note = rmu_parameters(model, cfg)
        if names is not None:
            keep = set(names)
            for n, p in model.named_parameters():
                p.requires_grad_(flags[n] and n in keep)
        if log:
            log(f"  rmu updates {trained_note}")
    try:
        model, steps, losses, seconds = _loop(model, tokenizer, forget, retain, cfg, method, ctx, gen, device, log,
                                              on_epoch=on_epoch, resume=resume, shard=shard, prepare=prepare)
    finally:
        for n, p in model.named_parameters():
            if n in flags:
                p.requires_grad_(flags[n])
    stats = {"method": cfg.method, "steps": steps, "seconds": seconds,
             "first_loss": losses[0] if losses else float("nan"),
             "last_loss": losses[-1] if losses else float("nan"), "lora": cfg.lora,
             "loss_curve": np.round(np.asarray(losses), 5).tolist()}
    if trained_note is not None:
        stats["rmu_updated"] = trained_note
    return model, stats


def epoch_ends(n_forget: int, cfg: LLMUnlearnConfig) -> dict[int, int]:
    """``{step: epoch}``: epoch e ends after s_e = min(steps, ⌈e·|F|/B⌉) steps (B = min(batch_size, |F|)),
    the step count of a run with ``epochs=e``; the last epoch ends at the last step."""
    bs = min(cfg.batch_size, n_forget)
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * n_forget / bs))
    ends, e = {}, 1
    while True:
        s = math.ceil(e * n_forget / bs)
        if s >= steps:
            ends[steps] = e
            return ends
        ends[s] = e
        e += 1


def _rows(items: list[Any], shard: tuple[int, int]) -> list[Any]:
    rank, world = shard
    return items[rank::world]


def _loop(model: torch.nn.Module, tokenizer: Any, forget: Sequence[Item], retain: Sequence[Item],
          cfg: LLMUnlearnConfig, method: Callable, ctx: _Ctx, gen: torch.Generator, device: torch.device,
          log: Callable[[str], None] | None, *, on_epoch: EpochCallback | None = None,
          resume: dict[str, Any] | None = None, shard: tuple[int, int] = (0, 1),
          prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
          ) -> tuple[torch.nn.Module, int, list[float], float]:
    # the module the loss runs through (a DDP wrapper when prepared); checkpoints take the inner one.
    # FSDP shards the model in place (expunge.train.sharding): its parameters are new objects, so the
    # optimizer is built from them after prepare, and checkpoints gather the full state first
    net = prepare(model) if prepare is not None else model
    sharded = is_sharded(net)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(params, OptimizerSpec("adamw", cfg.lr, weight_decay=cfg.weight_decay))
    n_f = len(forget)
    bs = min(cfg.batch_size, n_f)
    if bs < shard[1]:
        raise ExpungeError(f"llm unlearning: a batch of {bs} forget items cannot be split over {shard[1]} workers")
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * n_f / bs))
    ends = epoch_ends(n_f, cfg)
    order = torch.randperm(n_f, generator=gen).tolist()
    pos, start = 0, 0
    losses: list[float] = []
    if resume is not None:
        # every draw below comes from these, so the continued run repeats the uninterrupted one
        if sharded:
            load_optimizer_state(opt, resume["optimizer"])
        else:
            opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        order, pos, start = list(resume["order"]), int(resume["pos"]), int(resume["step"])
        losses = list(resume.get("losses", []))

    def batches():  # the next shuffled forget batch and a random retain batch, per step
        nonlocal order, pos
        for _ in range(start, steps):
            if pos + bs > n_f:
                order = torch.randperm(n_f, generator=gen).tolist()
                pos = 0
            fb = make_batch(tokenizer, _rows([forget[i] for i in order[pos:pos + bs]], shard), cfg.max_length,
                            device)
            pos += bs
            rb = None
            if retain:
                ridx = torch.randint(0, len(retain), (bs,), generator=gen).tolist()
                rb = make_batch(tokenizer, _rows([retain[i] for i in ridx], shard), cfg.max_length, device)
            yield fb, rb

    def on_step(step: int, loss: torch.Tensor) -> None:  # step: steps taken, 1-based
        losses.append(float(loss))
        if log and step % max(1, steps // 5) == 0:
            log(f"  {cfg.method} step {step}/{steps}: loss {losses[-1]:.4f}")
        if on_epoch is not None and step in ends:
            model.eval()
            kept, optim_state = model, None
            if sharded:  # collectives on every rank; rank 0 gets the full state, the others nothing
                weights, optim_state = gather_model_state(model), gather_optimizer_state(opt)
                if weights:
                    with torch.random.fork_rng(devices=[]):  # a new model's init must not move the loop's RNG
                        kept = unsharded_class(model)(model.config).to(device)
                    kept.load_state_dict(weights)
                    kept.eval()
            state = {"step": step, "epoch": ends[step], "optimizer": optim_state if sharded else opt.state_dict(),
                     "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "order": list(order),
                     "pos": pos, "losses": list(losses)}
            if device.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state(device)
            on_epoch(ends[step], copy.deepcopy(model).merge_and_unload() if cfg.lora else kept, state)
            model.train()

    t0 = time.perf_counter()
    model.train()
    run_steps(opt, batches(), lambda batch: method(net, *batch, ctx), step=start, grad_clip=cfg.grad_clip,
              on_step=on_step)
    model.eval()
    if cfg.lora:
        model = model.merge_and_unload()
    return model, steps, losses, round(time.perf_counter() - t0, 3)
