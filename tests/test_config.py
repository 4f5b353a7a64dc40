from __future__ import annotations

import pytest

from expunge.config import ExperimentConfig, parse_overrides

from expunge.resolve import load_config
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


# --- duplicate keys ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, key, lines", [
    ("seed: 1\nname: a\nseed: 2\n", "seed", "lines 1 and 3"),
    ("train:\n  epochs: 3\ndata:\n  dataset: digits\ntrain:\n  lr: 0.1\n", "train", "lines 1 and 5"),
    ("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n", "train.epochs", "lines 2 and 4"),
    ("unlearn:\n  methods:\n    - {name: ga, params: {lr: 0.1, lr: 0.2}}\n", "unlearn.methods[0].params.lr",
     "line 3, columns 27 and 36"),
], ids=["top-level", "section", "nested", "flow-mapping"])
def test_duplicate_yaml_keys_name_the_key_and_both_lines(tmp_path, text, key, lines):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"config file {path}: duplicate key {key} ({lines})"


def test_duplicate_key_inside_an_override_value():
    with pytest.raises(ConfigError, match=r"duplicate key audit\.params\.rmia\.gamma"):
        load_config(None, ["audit.params={rmia: {gamma: 1, gamma: 2}}"])


def test_merge_keys_and_base_files_still_override(tmp_path):
    """`<<: *anchor` and `base:` are how a YAML file restates a value on purpose: not duplicates."""
    (tmp_path / "base.yaml").write_text("seed: 1\ntrain: {epochs: 3, lr: 0.1}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nseed: 2\ntrain:\n  <<: {epochs: 5, lr: 0.2}\n  epochs: 6\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.seed, cfg.train.epochs, cfg.train.lr) == (2, 6, 0.2)


# --- strict numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("seed=true", "seed: must be an integer (got True)"),
    ("train.epochs=true", "train.epochs: must be an integer (got True)"),
    ("fleet.size=false", "fleet.size: must be an integer (got False)"),
    ("train.lr=true", "train.lr: must be a number (got True)"),
    ("train.grad_clip=true", "train.grad_clip: must be a number (got True)"),
    ("data.sizes.test=true", "data.sizes.test: must be a number (got True)"),
    ("train.epochs=5.0", "train.epochs: must be an integer (got 5.0)"),
    ("train.epochs='5'", "train.epochs: must be an integer (got '5')"),
    ("train.nesterov=1", "train.nesterov: must be true or false (got 1)"),
])
def test_booleans_and_other_types_are_not_coerced(override, message):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert str(exc.value) == f"config: {message}"


@pytest.mark.parametrize("value", ["nan", "NaN", ".nan", "inf", "-inf", ".inf", "infinity"])
def test_non_finite_floats_say_so(value):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"train.lr={value}"])
    assert "train.lr: must be finite" in str(exc.value) and "less than" not in str(exc.value)


def test_strict_numbers_in_yaml_files(tmp_path):
    for text, message in [("seed: true\n", "seed: must be an integer"),
                          ("train:\n  epochs: yes\n", "train.epochs: must be an integer"),
                          ("train:\n  lr: .nan\n", "train.lr: must be finite")]:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text("train:\n  lr: 1e-4\n  momentum: 0\n  weight_decay: 5E-4\ndata:\n  sizes: {test: 100}\n")
    cfg = load_config(path)  # YAML 1.2 exponents are numbers; an int is fine for a float field
    assert cfg.train.lr == 1e-4 and cfg.train.weight_decay == 5e-4
    assert isinstance(cfg.train.momentum, float) and cfg.data.sizes.test == 100


def test_numpy_scalars_from_code_are_plain_numbers():
    np = pytest.importorskip("numpy")
    cfg = ExperimentConfig()
    cfg.train.epochs = np.int64(3)
    cfg.train.lr = np.float32(0.5)
    assert type(cfg.train.epochs) is int and type(cfg.train.lr) is float
    with pytest.raises(ValueError, match="valid integer"):
        cfg.seed = np.bool_(True)


def test_unlearn_min_steps_fills_every_method_that_has_it_unless_set():
    cfg = load_config(None, ["unlearn.min_steps=0",
                             "unlearn.methods=[retrain, ga, {name: finetune, params: {min_steps: 50}}]"])
    params = {m.name: m.params for m in cfg.unlearn.methods}
    assert params["ga"] == {"min_steps": 0} and params["finetune"] == {"min_steps": 50}
    assert params["retrain"] == {}  # its own procedure: no shared-loop step rule
    default = load_config(None, ["unlearn.methods=[ga]"])
    assert default.unlearn.methods[0].params == {}
    with pytest.raises(ConfigError, match="unlearn.min_steps"):
        load_config(None, ["unlearn.min_steps=-1"])


def test_unlearn_min_steps_reaches_sweep_trials_unless_the_method_fixes_or_searches_it():
    cfg = load_config(None, ["unlearn.min_steps=0", "sweep.methods=[ga, ssd, {name: finetune, params: {min_steps: 50}}, "
                             "{name: rl, space: {min_steps: {choice: [0, 100]}}}]"])
    params = {m.name: m.params for m in cfg.sweep.methods}
    assert params == {"ga": {"min_steps": 0}, "ssd": {}, "finetune": {"min_steps": 50}, "rl": {}}
    assert load_config(None, ["sweep.methods=[ga]"]).sweep.methods[0].params == {}


def test_relative_storage_is_refused_inside_a_ray_job(monkeypatch, tmp_path):
    """Under `ray job submit` a relative storage resolves into the job's temporary package folder."""
    from expunge.config import RAY_JOB_ENV

    assert load_config(None, ["storage=runs"]).storage == "runs"  # outside a job: relative is fine
    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    with pytest.raises(ConfigError, match="storage='runs' is relative.*temporary package folder"):
        load_config(None, ["storage=runs"])
    assert load_config(None, [f"storage={tmp_path}"]).storage == str(tmp_path)
    assert load_config(None, ["storage=s3://bucket/runs"]).storage == "s3://bucket/runs"
