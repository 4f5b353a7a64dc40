"""Fine-tuning (FT): continue training the original on the retain set only.

Catastrophic forgetting of D_f is the hoped-for effect (Warnecke et al., 2023; Golatkar et al.,
2020). Defaults follow the Unlearn-Sparse/SalUn README: lr 0.01 for 10 epochs.
"""
from __future__ import annotations

from pydantic import Field

from expunge.unlearn.space import Domain, loguniform, randint
from expunge.unlearn.base import MethodConfig, UnlearnMethod, register_method


class FinetuneConfig(MethodConfig):
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0)
    augment: bool = True

    @classmethod
    def search_space(cls) -> dict[str, Domain]:
        return {"lr": loguniform(1e-3, 1e-1), "epochs": randint(1, 11)}


@register_method("finetune")
class Finetune(UnlearnMethod):
    """Fine-tune on the retain set (FT): CE(D_r), lr 0.01, 10 epochs."""

    Config = FinetuneConfig
