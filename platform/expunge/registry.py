"""One registry type for datasets, models, unlearning methods and metrics.

In the spirit of timm's ``register_model``: a decorator adds a factory under a name, ``get`` looks it
up and answers an unknown name with the closest known ones, ``describe`` lists every entry with the
first line of its docstring (``expunge info`` prints these).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

from expunge.errors import ExpungeError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (functions or classes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, key: str | None = None, /, **attrs: Any) -> Callable[[T], T]:
        """The one register signature: ``@REGISTRY.register("name", **declared)``. The name defaults to
        the object's ``__name__``; each keyword is set as an attribute of the registered object (what
        it declares about itself: a method's ``name``, an attack's ``needs``, an LLM method's
        ``needs_retain``), so every registry's entries describe themselves the same way."""

        def deco(obj: T) -> T:
            name = key or getattr(obj, "__name__")
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            for attr, value in attrs.items():
                setattr(obj, attr, value)
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ExpungeError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        return unknown_name(self.kind, name, self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def register_adapter(self, name: str, needs: Sequence[str], allowed: Sequence[str],
                         defaults: dict[str, Any]) -> Callable[[T], T]:
        """Decorator for an adapter that declares the optional inputs it reads: sets ``fn.needs``
        (each one of ``allowed``) and ``fn.defaults`` (its parameters), then registers it under
        ``name`` (the LLM attacks and QA metrics, which run only where their inputs exist)."""
        unknown = set(needs) - set(allowed)
        if unknown:
            raise ValueError(f"unknown needs {unknown}")

        return self.register(name, needs=frozenset(needs), defaults=dict(defaults))

    def resolve_adapters(self, names: Sequence[str] | None, available: set[str], strict: bool,
                         describe_need: Callable[[str], str] = str) -> tuple[list[str], dict[str, str]]:
        """The adapters to run (``names``, or every one) and, for those skipped, why: an unknown name
        is an error; an adapter whose ``needs`` are not all ``available`` is skipped, or, with
        ``strict`` (names given explicitly), an error naming what it needs."""
        chosen = list(self.names()) if not names else list(names)
        for n in chosen:
            self.get(n)  # unknown name -> ExpungeError with suggestions
        run, skipped = [], {}
        for n in chosen:
            missing = sorted(self.get(n).needs - available)  # type: ignore[attr-defined]
            if missing:
                why = "needs " + ", ".join(describe_need(m) for m in missing)
                if strict:
                    raise ExpungeError(f"{self.kind} {n!r} {why}")
                skipped[n] = why
            else:
                run.append(n)
        return run, skipped

    def describe(self) -> dict[str, str]:
        """name -> first line of the entry's docstring."""
        out = {}
        for key in self.names():
            doc = inspect.getdoc(self._entries[key]) or ""
            out[key] = doc.splitlines()[0] if doc else ""
        return out
