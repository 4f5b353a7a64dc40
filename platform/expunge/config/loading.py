"""Reading configs: YAML (duplicate keys refused), ``base:`` includes, ``key=value`` overrides, and
schema validation with one-line errors that name the dotted key.

Merging (``base:`` includes, overrides over the file) is OmegaConf's. Parsing stays with PyYAML and
:func:`load_yaml`, for one reason: a repeated key is refused with its dotted path and both line
numbers (``duplicate key audit.params.rmia.gamma (lines 4 and 9)``), where OmegaConf's loader names
the key alone.

Registry names are not checked here (the schema imports no registry): :func:`expunge.resolve.load_config`
reads with :func:`read_config` and then resolves.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from expunge.config.schema import ExperimentConfig
from expunge.errors import ConfigError

#: pydantic's wording replaced where it misleads (a strict type refusal reads "valid integer")
_MESSAGES = {"int_type": "must be an integer", "float_type": "must be a number", "finite_number": "must be finite",
             "bool_type": "must be true or false", "string_type": "must be a string"}


def _union_member(part: str) -> bool:
    """A location part pydantic adds for a member of a union (``int``, ``dict[str,float]``, ...)."""
    return part in ("int", "float", "str", "bool", "none") or "[" in part


def describe_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line for all of a pydantic error's problems: ``<dotted key>: <what is wrong> (got <value>)``."""
    lines: list[str] = []
    for err in exc.errors():
        # one message per key, not one per member of its union
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and _union_member(p)))
        if any(line.startswith(f"{loc}: ") for line in lines):
            continue
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1])
            lines.append(f"{loc}: unknown key (allowed: {', '.join(allowed)})")
        else:
            msg = _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"{loc}: {msg}{shown}" if loc else msg)
    return "; ".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two fixes for configs.

    * Floats are read as YAML 1.2 writes them: ``1e-4`` and ``1E5`` are numbers (YAML 1.1, which
      PyYAML follows, needs a dot and a signed exponent: ``1.0e-4``), so a strict float field
      accepts what a user types.
    * Duplicate keys are refused by :func:`load_yaml` (YAML 1.2 requires unique keys; PyYAML keeps
      the last value silently).
    """


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _duplicate_keys(node: yaml.Node, path: str, source: str, seen: set[int]) -> None:
    """Raise on the first mapping (at any depth) that repeats a key, naming it and both lines."""
    if id(node) in seen:  # an alias of a node already checked (or a recursive anchor)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys override by design
                continue
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            name = f"{path}.{key_node.value}" if path else str(key_node.value)
            mark = key_node.start_mark
            if key in first:
                (l0, c0), l1, c1 = first[key], mark.line + 1, mark.column + 1
                where = f"lines {l0} and {l1}" if l0 != l1 else f"line {l1}, columns {c0} and {c1}"
                raise ConfigError(f"{source}: duplicate key {name} ({where})")
            first[key] = (mark.line + 1, mark.column + 1)
            _duplicate_keys(value_node, name, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, f"{path}[{i}]", source, seen)


def load_yaml(text: str, source: str, path: str = "") -> Any:
    """Parse one YAML document with :class:`ConfigLoader`; a repeated key is a :class:`ConfigError`
    naming ``source``, the dotted key (under ``path``) and the lines of both occurrences."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _duplicate_keys(node, path, source, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.epochs=5", "data.forget=class:3"]`` -> nested dict, built with OmegaConf.

    Each value is parsed by :func:`load_yaml`, the loader of config files, so ``key=value`` means
    what ``key: value`` means in a file (YAML 1.2 floats such as ``1e-4``; ``${...}`` is kept as text,
    never interpolated); OmegaConf's own dotlist grammar differs in details (``x=`` is null there).
    """
    out = OmegaConf.create({})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = load_yaml(raw, f"override {item!r}", key) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parent = key.rpartition(".")[0]
        if parent and not isinstance(OmegaConf.select(out, parent, default={}), (dict, DictConfig)):
            raise ConfigError(f"override {item!r} conflicts with another override of {parent}")
        try:
            OmegaConf.update(out, key, _omega(value, f"override {item!r}"), merge=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"override {item!r}: {str(exc).splitlines()[0]}") from None
    return OmegaConf.to_container(out, resolve=False)


def _omega(value: Any, source: str) -> Any:
    """``value`` as OmegaConf takes it; a YAML value it cannot hold (a date, a binary) is a ConfigError."""
    try:
        return OmegaConf.create(value) if isinstance(value, (dict, list)) else value
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {str(exc).splitlines()[0]}") from None


def deep_merge(base: dict[str, Any], extra: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``extra`` merged over ``base`` by OmegaConf: mappings merge key by key, anything else (lists
    included) is replaced; strings are kept as written (no interpolation)."""
    merged = OmegaConf.merge(_omega(base, source), _omega(extra, source))
    return OmegaConf.to_container(merged, resolve=False)


def read_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping; ``base: other.yaml`` (relative to this file) is read first and this file's
    keys are deep-merged over it, so a sweep config states only what differs from its experiment."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ConfigError(f"config file {path} is empty")
    try:
        data = load_yaml(text, f"config file {path}")
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        raise ConfigError(f"config file {path} holds no settings (only comments)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: base must be a path to another YAML file")
    base_path = (p.parent / base).resolve()
    if base_path in _seen or base_path == p.resolve():
        raise ConfigError(f"config file {path}: base {base} includes itself")
    return deep_merge(read_yaml(base_path, (*_seen, p.resolve())), data, f"config file {path}")


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config"):
    """``model`` validated from ``data``; a ConfigError of one line (``<source>: <problems>``) otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, model)}") from None


def read_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
                model: type[BaseModel] = ExperimentConfig):
    """Read YAML (or defaults), apply ``key=value`` overrides, validate into ``model`` (the schema only)."""
    data = read_yaml(path) if path is not None else {}
    data = deep_merge(data, parse_overrides(list(overrides)))
    cfg = validate(model, data, source=str(path) if path else "config")
    if isinstance(cfg, ExperimentConfig):
        check_storage(cfg.storage)
    return cfg


#: set by Ray's job supervisor in the environment of a ``ray job submit`` entrypoint
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def check_storage(storage: str) -> None:
    """Refuse, before anything is read or computed, a local ``storage`` that cannot hold a run: one
    whose nearest existing ancestor is a file. Under ``ray job submit`` the entrypoint's working
    directory is the job's unpacked package (``<ray temp>/session_*/runtime_resources/
    working_dir_files/_ray_pkg_*``), which Ray deletes later, so a relative ``storage`` would put the
    whole run where the user never finds it: refused too."""
    if "://" in storage:
        return
    existing = Path(storage).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"storage={storage!r}: {existing} is a file, not a directory")
    if RAY_JOB_ENV in os.environ and not os.path.isabs(storage):
        raise ConfigError(f"storage={storage!r} is relative: under `ray job submit` it would land in the job's "
                          f"temporary package folder ({os.getcwd()}), which Ray deletes; set storage= to a path "
                          "every node sees (e.g. storage=/mnt/shared/runs) or an object store URI (s3://, gs://)")
