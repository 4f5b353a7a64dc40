from __future__ import annotations

import pytest

from expunge.config import ExperimentConfig, load_config, parse_overrides
from expunge.errors import ConfigError


def test_digits_yaml_validates(repo_root):
    cfg = load_config(repo_root / "configs/experiments/digits.yaml")
    assert cfg.data.dataset == "digits" and cfg.model.name == "cnn"
    from expunge.unlearn import METHODS

    names = [m.name for m in cfg.unlearn.methods]
    # the demo runs every method that applies to random forgetting
    assert set(names) == {n for n in METHODS.names() if METHODS.get(n).forget_kinds is None}


def test_overrides_apply_typed_values(repo_root):
    cfg = load_config(repo_root / "configs/experiments/digits.yaml",
                      ["train.epochs=5", "data.forget=class:3", "train.lr=1e-3", "unlearn.methods=[ga]"])
    assert cfg.train.epochs == 5 and isinstance(cfg.train.epochs, int)
    assert cfg.data.forget == "class:3" and cfg.train.lr == pytest.approx(1e-3)
    assert [m.name for m in cfg.unlearn.methods] == ["ga"]


def test_parse_overrides_nested():
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


@pytest.mark.parametrize("override, names", [
    (["train.epoch=5"], ["train.epoch", "unknown key", "epochs"]),
    (["train.epochs=-1"], ["train.epochs", "greater than or equal to 1"]),
    (["train.epochs=abc"], ["train.epochs"]),
    (["train.optimizer=rmsprop"], ["train.optimizer", "'sgd'", "'adamw'"]),
    (["data.dataset=digitz"], ["data.dataset", "did you mean digits"]),
    (["model.name=resnet19"], ["model.name", "resnet"]),
    (["data.forget=random:1.5"], ["data.forget", "(0, 1)"]),
    (["data.forget=random:0"], ["data.forget"]),
    (["data.forget=nonsense:3"], ["data.forget", "unknown kind"]),
    (["unlearn.methods=[forgetall]"], ["unlearn.methods", "unknown unlearning method"]),
    (["unlearn.methods=[{name: finetune, params: {lr: -1}}]"], ["lr", "greater than 0"]),
    (["unlearn.methods=[{name: finetune, params: {lrr: 1}}]"], ["lrr", "unknown key"]),
    (["data.sizes.test=1.5"], ["data.sizes.test", "< 1"]),
    (["name=../escape"], ["name"]),
    (["device=tpu"], ["device", "allowed"]),
    (["nokey"], ["section.key=value"]),
])
def test_bad_values_name_the_key(override, names, repo_root):
    with pytest.raises(ConfigError) as err:
        load_config(repo_root / "configs/experiments/digits.yaml", override)
    msg = str(err.value)
    assert "\n" not in msg
    for n in names:
        assert n in msg, msg


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_defaults_are_valid():
    cfg = ExperimentConfig()
    assert cfg.run_dir.endswith("experiment")
