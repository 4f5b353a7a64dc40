"""One registry type for datasets, models, unlearning methods and metrics.

In the spirit of timm's ``register_model``: a decorator adds a factory under a name, ``get`` looks it
up and answers an unknown name with the closest known ones, ``describe`` lists every entry with the
first line of its docstring (``expunge info`` prints these).
"""
from __future__ import annotations

import difflib
import inspect
from typing import Callable, Generic, Iterator, TypeVar

from expunge.errors import ExpungeError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (functions or classes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("cnn")`` (the name defaults to the object's ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ExpungeError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._entries))})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """name -> first line of the entry's docstring."""
        out = {}
        for key in self.names():
            doc = inspect.getdoc(self._entries[key]) or ""
            out[key] = doc.splitlines()[0] if doc else ""
        return out
