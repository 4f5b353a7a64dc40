"""Unlearning methods: one module per method, registered by name in ``METHODS``."""
from expunge.unlearn.base import (METHODS, Batch, MethodConfig, UnlearnContext, UnlearnMethod, UnlearnResult,
                                  register_method, run_loop, unlearn)

from expunge.unlearn import retrain, finetune, gradient_ascent, boundary, ieu, pru, neggrad_plus, l1_sparse, scrub, bad_teacher, ssd, fisher, random_labels, salun, cpu  # noqa: E402,F401  isort: skip

__all__ = ["METHODS", "Batch", "MethodConfig", "UnlearnContext", "UnlearnMethod", "UnlearnResult",
           "register_method", "run_loop", "unlearn"]
