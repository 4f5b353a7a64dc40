"""Any timm model by name: ``timm:<name>`` (randomly initialised unless ``pretrained=True``).

:class:`TimmClassifier` adapts a timm model to the :class:`Classifier` split: ``features`` is timm's
pre-logits embedding (``forward_head(forward_features(x), pre_logits=True)``) and ``fc`` is timm's own
classifier module, so the head weights exist once and ``state_dict`` keys are exactly timm's
(prefixed ``net.``).
"""
from __future__ import annotations

import difflib

import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.models.base import Classifier, register_model


class TimmClassifier(Classifier):
    """A timm model split into ``features`` (pre-logits embedding) and ``fc`` (timm's Linear classifier)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        head = net.get_classifier()
        if not isinstance(head, nn.Linear):
            # e.g. distilled DeiT (two heads) or a 1x1-conv classifier: no single Linear to split off
            raise ExpungeError(f"timm model {type(net).__name__}: classifier is {type(head).__name__}, "
                               "expected one nn.Linear head")

    # ``fc`` is a view of timm's classifier rather than a second registered submodule: an alias would
    # put the head in the state_dict twice and break loading into a plain timm model.
    @property
    def fc(self) -> nn.Linear:  # type: ignore[override]
        return self.net.get_classifier()

    def __setattr__(self, name: str, value: object) -> None:
        # nn.Module.__setattr__ would register a new submodule that the property then hides; replace
        # the classifier inside ``net`` instead, so ``model.fc = nn.Linear(...)`` works as elsewhere
        if name == "fc" and "net" in self._modules:
            if not isinstance(value, nn.Module):
                raise TypeError(f"fc must be an nn.Module, got {type(value).__name__}")
            current = self.net.get_classifier()
            for path, module in self.net.named_modules():
                if module is current:
                    parent, _, attr = path.rpartition(".")
                    setattr(self.net.get_submodule(parent), attr, value)
                    return
            raise AttributeError(f"cannot locate the classifier of {type(self.net).__name__} to replace it")
        super().__setattr__(name, value)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def verify(self, in_shape: tuple[int, int, int], name: str) -> None:
        """Check on a random batch (eval mode) that ``fc(features(x))`` reproduces timm's own logits.

        Catches models whose head does more than the Linear (logit scaling, several heads averaged),
        which the features/head split would silently change.
        """
        was_training = self.training
        x = torch.randn(2, *in_shape, generator=torch.Generator().manual_seed(0))  # leaves global RNG alone
        self.eval()
        try:
            with torch.no_grad():
                ref, ours = self.net(x), self(x)
        except Exception as exc:
            raise ExpungeError(f"timm model {name!r} fails on input shape {tuple(in_shape)}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        finally:
            self.train(was_training)
        if ref.shape != ours.shape or not torch.allclose(ref, ours, rtol=1e-4, atol=1e-5):
            raise ExpungeError(f"timm model {name!r}: classifier(pre-logits) does not reproduce the model's "
                               "logits, so it cannot be split into features and a linear head")


def _check_name(timm_name: str) -> None:
    import timm
    from timm.models import split_model_name_tag

    if not timm_name:
        raise ExpungeError("model timm: give a name, e.g. model.name=timm:resnet18")
    if ":" in timm_name:  # hf-hub:/local-dir: sources are resolved (and checked) by timm itself
        return
    arch, _ = split_model_name_tag(timm_name)  # 'resnet18.a1_in1k' -> 'resnet18'
    if not timm.is_model(arch):
        known = timm.list_models()
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        raise ExpungeError(f"unknown timm model {timm_name!r}; {hint}")


@register_model("timm")
def timm_model(num_classes: int, in_shape: tuple[int, int, int], timm_name: str = "", pretrained: bool = False,
               **kwargs) -> TimmClassifier:
    """Any timm model: model.name=timm:<name> (pretrained weights only when asked for and online)."""
    import timm

    _check_name(timm_name)
    c, h, w = in_shape
    base = dict(pretrained=pretrained, num_classes=num_classes, in_chans=c, **kwargs)
    try:
        try:
            # transformers size their position embeddings from img_size; convnets reject the keyword
            net = timm.create_model(timm_name, img_size=(h, w), **base)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            net = timm.create_model(timm_name, **base)
    except TypeError as exc:
        raise ExpungeError(f"timm model {timm_name!r}: bad keyword arguments {sorted(kwargs)} ({exc})") from None
    except Exception as exc:  # offline pretrained download, invalid sizes, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpungeError(f"timm model {timm_name!r} could not be built: {msg}") from None
    model = TimmClassifier(net)
    model.verify(in_shape, timm_name)
    return model
