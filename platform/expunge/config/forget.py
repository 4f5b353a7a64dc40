"""The forget spec: which training samples a request asks to forget, parsed once.

``random:<fraction or count>``, ``class:<c>``, ``class_percentage:<c>:<ratio>``, ``indices:<file>``
(a ``.npy`` or whitespace-separated ``.txt`` of dataset positions) and ``mislabeled`` (the samples
``data.label_noise`` corrupted). The config validates the text with :meth:`ForgetSpec.parse`; the
split plan gives the parsed spec (``SplitPlan.spec``), so no stage parses or infers the kind again.
"""
from __future__ import annotations

from dataclasses import dataclass

from expunge.errors import DataError


@dataclass(frozen=True)
class ForgetSpec:
    """A parsed forget spec: ``kind`` (random, class, class_percentage, mislabeled, indices),
    ``value`` (the fraction or count, the ratio, or the indices file) and ``cls`` (the class)."""

    kind: str
    value: float | int | str | None = None
    cls: int | None = None

    @staticmethod
    def parse(spec: str) -> "ForgetSpec":
        kind, _, rest = spec.partition(":")
        try:
            if kind == "random":
                value: float | int = float(rest) if any(ch in rest for ch in ".eE") else int(rest)
                if isinstance(value, float) and not 0.0 < value < 1.0:
                    raise DataError(f"forget spec {spec!r}: fraction must be in (0, 1), got {value}")
                if isinstance(value, int) and value < 1:
                    raise DataError(f"forget spec {spec!r}: count must be >= 1, got {value}")
                return ForgetSpec("random", value)
            if kind == "class":
                return ForgetSpec("class", cls=int(rest))
            if kind == "class_percentage":
                c, _, ratio = rest.partition(":")
                r = float(ratio)
                if not 0.0 < r <= 1.0:
                    raise DataError(f"forget spec {spec!r}: ratio must be in (0, 1], got {r}")
                return ForgetSpec("class_percentage", r, cls=int(c))
            if kind == "mislabeled":
                if rest:
                    raise ValueError("mislabeled takes no value; set the noise rate with data.label_noise")
                return ForgetSpec("mislabeled")
            if kind == "indices":
                if not rest:
                    raise ValueError("no file")
                return ForgetSpec("indices", rest)
        except ValueError as exc:
            raise DataError(f"forget spec {spec!r} is malformed ({exc})") from None
        raise DataError(f"forget spec {spec!r}: unknown kind {kind!r} (allowed: random:<fraction|count>, "
                        "class:<c>, class_percentage:<c>:<ratio>, indices:<file>, mislabeled)")

    def __str__(self) -> str:
        if self.kind == "random":
            return f"random:{self.value}"
        if self.kind == "class":
            return f"class:{self.cls}"
        if self.kind == "class_percentage":
            return f"class_percentage:{self.cls}:{self.value}"
        if self.kind == "mislabeled":
            return "mislabeled"
        return f"indices:{self.value}"

    @property
    def classwise(self) -> bool:
        """Whether the spec names a class (``class`` or ``class_percentage``)."""
        return self.kind in ("class", "class_percentage")
