"""Any timm model by name: ``timm:<name>`` (randomly initialised unless ``pretrained=True``)."""
from __future__ import annotations

import difflib

from expunge.errors import ExpungeError
from expunge.models.base import register_model
from expunge.models.vit import TimmClassifier


@register_model("timm")
def timm_model(num_classes: int, in_shape: tuple[int, int, int], timm_name: str = "", pretrained: bool = False,
               **kwargs) -> TimmClassifier:
    """Any timm model: model.name=timm:<name> (pretrained weights only when asked for and online)."""
    import timm

    if not timm_name:
        raise ExpungeError("model timm: give a name, e.g. model.name=timm:resnet18")
    known = timm.list_models()
    if timm_name not in known:
        close = difflib.get_close_matches(timm_name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ExpungeError(f"unknown timm model {timm_name!r}{hint}")
    c, h, w = in_shape
    base = dict(pretrained=pretrained, num_classes=num_classes, in_chans=c, **kwargs)
    try:
        net = timm.create_model(timm_name, img_size=(h, w), **base)
    except TypeError:  # convnets take no img_size
        net = timm.create_model(timm_name, **base)
    except Exception as exc:  # pretrained download offline, bad kwargs
        raise ExpungeError(f"timm model {timm_name!r} could not be built: {str(exc).splitlines()[0]}") from None
    return TimmClassifier(net)
