"""Unlearning for causal language models: gradient ascent, gradient difference and NPO.

Each method is a loss over a forget batch F and a retain batch R, registered in :data:`LLM_METHODS`
(ℓ̄ = mean token NLL of a batch, NLL(x) = summed token NLL of a sequence, θ_ref = the model before
unlearning, frozen):

* ``ga`` (gradient ascent): L = −γ · ℓ̄_θ(F). The retain set is not used.
* ``grad_diff`` (gradient difference): L = −γ · ℓ̄_θ(F) + α · ℓ̄_θ(R).
* ``npo`` (Negative Preference Optimization, Zhang et al. 2024, arXiv 2404.05868, with the retain
  term of OpenUnlearning's NPO, which extends GradDiff):
  L = γ · mean_{x∈F} (2/β) log(1 + (π_θ(x)/π_ref(x))^β) + α · ℓ̄_θ(R)
    = −γ · mean (2/β) logsigmoid(β (NLL_θ(x) − NLL_ref(x))) + α · ℓ̄_θ(R).

Defaults follow OpenUnlearning (``src/trainer/unlearn/grad_diff.py``: γ = α = 1, retain loss NLL)
and the NPO paper (β = 0.1); lr, batch size and the number of epochs are the caller's (OpenUnlearning's
TOFU runs use lr 1e-5 for 7B models; a tiny model from scratch needs ~1e-3).

LoRA (``lora=True``) trains low-rank adapters through ``peft`` (optional: ``pip install
'expunge[lora]'``; a clear error otherwise) and merges them into the weights at the end, so the
result is a plain Hugging Face model. NPO's reference is then the base model with the adapters
disabled (no second copy in memory); otherwise it is a frozen copy of the model, or a model passed
in, which must use the same tokenizer (checked).
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from expunge.errors import ConfigError, ExpungeError
from expunge.llm.models import check_same_tokenizer, encode_texts, pad_id
from expunge.registry import Registry

LLM_METHODS: Registry = Registry("LLM unlearning method")


class LLMUnlearnConfig(BaseModel):
    """Settings of one LLM unlearning run (unknown keys and bad values are ConfigErrors)."""

    model_config = ConfigDict(extra="forbid")

    method: str = "npo"
    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(1.0, gt=0, description="passes over the forget set (fractions allowed)")
    steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(8, ge=1)
    max_length: int | None = Field(None, ge=2)
    beta: float = Field(0.1, gt=0)
    alpha: float = Field(1.0, ge=0)
    gamma: float = Field(1.0, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    lora: bool = False
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | None = None
    seed: int = 0

    @field_validator("method")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in LLM_METHODS:
            raise ValueError(LLM_METHODS.unknown_message(v))
        return v


def make_config(**kw: Any) -> LLMUnlearnConfig:
    from pydantic import ValidationError

    try:
        return LLMUnlearnConfig(**kw)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise ConfigError(f"llm unlearning config: {msgs}") from None


# --- batches and losses ----------------------------------------------------------------------
def make_batch(tokenizer: Any, texts: Sequence[str], max_length: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (−100 at padding)."""
    seqs = encode_texts(tokenizer, texts, add_special_tokens=True)
    if max_length:
        seqs = [s[:max_length] for s in seqs]
    width = max(len(s) for s in seqs)
    x = torch.full((len(seqs), width), pad_id(tokenizer), dtype=torch.long)
    att = torch.zeros_like(x)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = torch.tensor(s)
        att[i, :len(s)] = 1
    labels = x.masked_fill(att == 0, -100)
    return {"input_ids": x.to(device), "attention_mask": att.to(device), "labels": labels.to(device)}


def sequence_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B] summed token NLL of each sequence (targets where labels != −100)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                          reduction="none").view(labels.shape)
    return nll.sum(1)


def mean_token_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """ℓ̄: mean token NLL over every target of the batch (the HF ``labels=`` loss)."""
    n = (batch["labels"][:, 1:] != -100).sum().clamp_min(1)
    return sequence_nll(model, batch).sum() / n


class _Ctx:
    """What a method's loss may use: the config and the frozen reference's NLL."""

    def __init__(self, cfg: LLMUnlearnConfig, ref_nll: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None):
        self.cfg = cfg
        self.ref_nll = ref_nll


def register_method(name: str, needs_retain: bool, needs_reference: bool) -> Callable:
    def deco(fn: Callable) -> Callable:
        fn.needs_retain = needs_retain
        fn.needs_reference = needs_reference
        return LLM_METHODS.register(name)(fn)

    return deco


@register_method("ga", needs_retain=False, needs_reference=False)
def gradient_ascent(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """Gradient ascent on the forget set: −γ · mean token NLL(F)."""
    return -ctx.cfg.gamma * mean_token_nll(model, forget)


@register_method("grad_diff", needs_retain=True, needs_reference=False)
def grad_diff(model, forget, retain, ctx: _Ctx) -> torch.Tensor:
    """Gradient difference: −γ · NLL(F) + α · NLL(R) (mean token NLLs)."""
    loss = -ctx.cfg.gamma * mean_token_nll(model, forget)
    if ctx.cfg.alpha > 0 and retain is not None:
        loss = loss + ctx.cfg.alpha * mean_token_nll(model, retain)
    return loss


@register_method("npo", needs_retain=True, needs_reference=True)
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


def check_inputs(cfg: LLMUnlearnConfig, forget: Sequence[str], retain: Sequence[str]) -> None:
    """User errors before any compute: empty sets, LoRA without peft."""
    fn = LLM_METHODS.get(cfg.method)
    if not forget:
        raise ExpungeError("llm unlearning: the forget set is empty")
    if any(not t.strip() for t in forget) or any(not t.strip() for t in retain):
        raise ExpungeError("llm unlearning: empty text in the forget or retain set")
    if fn.needs_retain and cfg.alpha > 0 and not retain:
        raise ExpungeError(f"llm unlearning: method {cfg.method!r} needs a retain set (or alpha=0)")
    if cfg.lora and not _has_peft():
        raise ExpungeError("lora=true needs the optional package 'peft' (pip install 'expunge[lora]')")


def _has_peft() -> bool:
    try:
        import peft
    except ImportError:
        return False
    return peft is not None


def unlearn_lm(model: torch.nn.Module, tokenizer: Any, forget: Sequence[str], retain: Sequence[str] = (),
               cfg: LLMUnlearnConfig | None = None, *, ref_model: torch.nn.Module | None = None,
               ref_tokenizer: Any = None, log: Callable[[str], None] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Unlearn ``forget`` from ``model`` (in place for full fine-tuning); returns ``(model, stats)``.

    ``steps`` = cfg.steps or ceil(epochs · |F| / batch_size); each step takes the next shuffled forget
    batch and a random retain batch of the same size.
    """
    cfg = cfg or LLMUnlearnConfig()
    check_inputs(cfg, forget, retain)
    method = LLM_METHODS.get(cfg.method)
    if ref_model is not None:
        check_same_tokenizer(tokenizer, ref_tokenizer if ref_tokenizer is not None else tokenizer,
                             f"{cfg.method} reference model")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    if cfg.lora:
        model = _wrap_lora(model, cfg)
    ref_nll = None
    if method.needs_reference:
        if ref_model is not None:
            ref = ref_model.eval()
            ref_nll = lambda b: sequence_nll(ref, b)  # noqa: E731
        elif cfg.lora:
            def ref_nll(b):
                with model.disable_adapter():
                    return sequence_nll(model, b)
        else:
            ref = copy.deepcopy(model).eval()
            for p in ref.parameters():
                p.requires_grad_(False)
            ref_nll = lambda b: sequence_nll(ref, b)  # noqa: E731
    ctx = _Ctx(cfg, ref_nll)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_f = len(forget)
    bs = min(cfg.batch_size, n_f)
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * n_f / bs))
    order = torch.randperm(n_f, generator=gen).tolist()
    pos = 0
    losses = []
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        if pos + bs > n_f:
            order = torch.randperm(n_f, generator=gen).tolist()
            pos = 0
        fb = make_batch(tokenizer, [forget[i] for i in order[pos:pos + bs]], cfg.max_length, device)
        pos += bs
        rb = None
        if retain:
            ridx = torch.randint(0, len(retain), (bs,), generator=gen).tolist()
            rb = make_batch(tokenizer, [retain[i] for i in ridx], cfg.max_length, device)
        loss = method(model, fb, rb, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"  {cfg.method} step {step + 1}/{steps}: loss {losses[-1]:.4f}")
    model.eval()
    if cfg.lora:
        model = model.merge_and_unload()
    stats = {"method": cfg.method, "steps": steps, "seconds": round(time.perf_counter() - t0, 3),
             "first_loss": losses[0], "last_loss": losses[-1], "lora": cfg.lora,
             "loss_curve": np.round(np.asarray(losses), 5).tolist()}
    return model, stats
