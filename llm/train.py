"""Plain causal-LM training (the demo's pre-training and fine-tuning): AdamW, random batches of whole
sequences, a constant learning rate that decays linearly to zero over the last 20% of the steps."""
from __future__ import annotations

import contextlib
import random
from typing import Any, Callable, Iterator, Sequence

import torch

from expunge.llm.unlearn import make_batch, mean_token_nll
from expunge.train.engine import run_steps
from expunge.train.optim import OptimizerSpec, build_optimizer


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (None: leave as is), restoring the previous setting.

    On a CPU shared with other busy processes, OpenMP threads that spin at barriers can make a
    2-thread small-model step 20x slower than a 1-thread one (measured on the project's 2-core
    machine: 1.6 s vs 78 ms per step), hence the demo's default of one thread.
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_lm(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *, steps: int, batch_size: int = 32,
             lr: float = 3e-3, weight_decay: float = 0.0, max_length: int | None = None, seed: int = 0,
             grad_clip: float | None = 1.0, on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place for ``steps`` steps on random batches of ``texts``; returns the losses.
    ``on_step(step, loss)`` is called after every step (1-based), e.g. to save checkpoints."""
    if not texts:
        raise ValueError("no training texts")
    device = next(model.parameters()).device
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = build_optimizer(model.parameters(), OptimizerSpec("adamw", lr, weight_decay=weight_decay))
    decay_from = int(0.8 * steps)

    def lr_at(step: int) -> float:
        return lr if step < decay_from else lr * (steps - step) / max(1, steps - decay_from)

    def report(step: int, loss: torch.Tensor) -> None:
        if on_step is not None:
            model.eval()
            on_step(step, float(loss))
            model.train()

    batches = (make_batch(tokenizer, rng.choices(texts, k=batch_size), max_length, device) for _ in range(steps))
    model.train()
    losses = run_steps(opt, batches, lambda batch: mean_token_nll(model, batch), lr_at=lr_at, grad_clip=grad_clip,
                       on_step=report)
    model.eval()
    return [float(loss) for loss in losses]
