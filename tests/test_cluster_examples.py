"""The cluster launch examples in configs/cluster/ hold together: the Ray cluster launcher config
(aws-gpu.yaml) passes Ray's own schema, the KubeRay RayJob (rayjob.yaml) has the fields KubeRay reads,
and the job command each one documents names a module that exists, a config in this repository, and
storage that survives `ray job submit` (checked by a dry run of that very command, under the
environment variable Ray's job supervisor sets). Image tags, Ray versions and Python versions agree
across the launcher config, the RayJob and the Dockerfile."""
from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from expunge.config import RAY_JOB_ENV

from expunge.resolve import load_config
from expunge.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "configs" / "cluster"
LAUNCHER = CLUSTER / "aws-gpu.yaml"
RAYJOB = CLUSTER / "rayjob.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"

#: rayproject/ray:<ray version>-py<XY>-<variant>, the official image tag scheme
RAY_IMAGE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d)(?P<minor>\d+)-(?P<variant>[\w.-]+)$")
#: the pin of ray in a pip command, e.g. "ray[default,tune,train]==2.60.0"
RAY_PIN = re.compile(r"ray(?:\[[^\]]*\])?==(?P<ray>\d+\.\d+\.\d+)")


def launcher() -> dict[str, Any]:
    return yaml.safe_load(LAUNCHER.read_text())


def rayjob_docs() -> tuple[dict[str, Any], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d]
    (job,) = [d for d in docs if d.get("kind") == "RayJob"]
    (pvc,) = [d for d in docs if d.get("kind") == "PersistentVolumeClaim"]
    return job, pvc


def documented_job_command(path: Path) -> list[str]:
    """The `ray job submit ... -- python -m ...` command in a file's leading comment, as argv after `--`."""
    lines = [ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")]
    text = " ".join(lines).replace("\\ ", " ")
    match = re.search(r"ray job submit .*? -- (python -m \S+ .*?)(?= ray down| #|$)", text)
    assert match, f"{path.name} documents no `ray job submit ... -- python -m ...` command"
    return shlex.split(match.group(1))


def overrides(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))


def check_job_command(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> dict[str, str]:
    """What every example's job command must satisfy; returns its key=value overrides."""
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert module == "expunge.jobs.pipeline"
    assert importlib.util.find_spec(module) is not None, f"{module} is not importable"
    config = argv[argv.index("--config") + 1]
    assert (REPO / config).is_file(), f"{config} is not in the repository"
    ov = overrides(argv)
    storage = ov.get("storage")
    assert storage, "storage= must be set explicitly: the config's default (runs) is relative"
    assert "://" in storage or storage.startswith("/"), f"storage={storage} is relative"
    root = ov.get("data.root")
    if root is not None:
        assert root.startswith("/"), f"data.root={root} is relative to the job's temporary working directory"
    # The command itself, as the job supervisor would run it, validated without computing anything.
    from expunge.jobs.pipeline import main

    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    capsys.readouterr()
    assert main([*argv[3:], "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "the config is valid" in out and storage.rstrip("/") in out
    return ov


def image_versions(image: str) -> tuple[str, str]:
    m = RAY_IMAGE.match(image)
    assert m, f"{image} is not an official rayproject/ray:<version>-pyXY-<variant> tag"
    return m["ray"], f"{m['py']}.{m['minor']}"


def requires_python_ok(version: str) -> bool:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    lo = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec)
    assert lo, f"unexpected requires-python {spec!r}"
    major, minor = map(int, version.split("."))
    return (major, minor) >= (int(lo[1]), int(lo[2]))


def dockerfile_base() -> tuple[str, str, str]:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    pins = RAY_PIN.findall(text)
    assert len(pins) == 1, "the Dockerfile pins ray once"
    return *image_versions(base), pins[0]


# --- the Ray cluster launcher config -----------------------------------------------------------
def test_launcher_config_passes_rays_schema():
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import validate_config

    cfg = launcher()
    # `ray up` fills cluster_synced_files from the provider defaults before validating
    validate_config({"cluster_synced_files": [], **cfg})
    assert cfg["provider"]["type"] == "aws"
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}
    assert workers and all(w.get("max_workers", 0) >= w.get("min_workers", 0) >= 0 for w in workers.values())
    assert sum(w.get("min_workers", 0) for w in workers.values()) <= cfg["max_workers"]


def test_launcher_installs_this_repository_with_matching_versions():
    cfg = launcher()
    ray_version, py = image_versions(cfg["docker"]["image"])
    assert requires_python_ok(py)
    # the mounted local path (relative to the repository root, where `ray up` runs) is this project
    (remote, local), = cfg["file_mounts"].items()
    assert (REPO / local).resolve() == REPO
    assert tomllib.loads((REPO / local / "pyproject.toml").read_text())["project"]["name"] == "expunge"
    installs = [c for c in cfg["setup_commands"] if c.startswith("pip install")]
    assert len(installs) == 1 and remote in shlex.split(installs[0])
    pins = RAY_PIN.findall(installs[0])
    assert pins == [ray_version], "setup_commands must pin ray to the image's version"
    # the image's Python matches the one the Dockerfile example builds on
    assert dockerfile_base()[1] == py


def test_launcher_job_command_names_real_entrypoint_config_and_storage(monkeypatch, capsys):
    cfg = launcher()
    ov = check_job_command(documented_job_command(LAUNCHER), monkeypatch, capsys)
    assert ov["storage"].startswith("s3://"), "no node-shared file system here: the runs go to a bucket"
    # the data.root the job reads is where setup_commands downloaded the data on every node
    downloads = [c for c in cfg["setup_commands"] if "load_dataset" in c]
    assert len(downloads) == 1
    assert re.search(r"root='([^']+)'", downloads[0])[1] == ov["data.root"]


# --- the KubeRay RayJob --------------------------------------------------------------------------
def pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    spec = job["spec"]["rayClusterSpec"]
    return [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]


def test_rayjob_has_the_fields_kuberay_reads():
    job, pvc = rayjob_docs()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    spec = job["spec"]
    assert isinstance(spec["entrypoint"], str) and spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        # KubeRay's rayStartParams is a map of strings: a bare number or boolean is rejected
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        assert group["template"]["spec"]["containers"]
    for g in cluster["workerGroupSpecs"]:
        assert g["groupName"] and g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        (worker,) = g["template"]["spec"]["containers"]
        assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1, "the workers are the GPU pods"
    assert pvc["apiVersion"] == "v1" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    # the job's runtime environment is the one `ray job submit` examples use
    runtime_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"] == runtime_env["env_vars"]


def test_rayjob_entrypoint_and_shared_storage(monkeypatch, capsys):
    job, pvc = rayjob_docs()
    ov = check_job_command(shlex.split(job["spec"]["entrypoint"]), monkeypatch, capsys)
    # storage and data.root lie on the shared claim, mounted at the same path in every pod
    for pod in pods(job):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        (container,) = pod["containers"]
        mounts = [m["mountPath"] for m in container["volumeMounts"] if claims.get(m["name"]) == pvc["metadata"]["name"]]
        assert mounts, f"{container['name']} does not mount {pvc['metadata']['name']}"
        for key in ("storage", "data.root"):
            assert any(ov[key] == m or ov[key].startswith(m.rstrip("/") + "/") for m in mounts), (key, mounts)


def test_rayjob_images_match_ray_version_and_dockerfile():
    job, _ = rayjob_docs()
    ray_version = job["spec"]["rayClusterSpec"]["rayVersion"]
    base_ray, base_py, pinned = dockerfile_base()
    assert base_ray == pinned == ray_version
    assert requires_python_ok(base_py)
    images = {c["image"] for pod in pods(job) for c in pod["containers"]}
    assert len(images) == 1, f"head and workers run different images: {images}"
    (image,) = images
    # the built image's tag carries the base's Ray and Python versions
    assert f"ray{ray_version}-py{base_py.replace('.', '')}" in image.rsplit(":", 1)[1]
    assert launcher()["docker"]["image"].split(":")[1].startswith(ray_version)


def test_relative_storage_is_refused_under_ray_job_submit(monkeypatch):
    """The property the examples' absolute storage= guards against, checked on their own config."""
    job, _ = rayjob_docs()
    config = REPO / job["spec"]["entrypoint"].split("--config ")[1].split()[0]
    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    with pytest.raises(ConfigError, match="relative"):
        load_config(str(config), ["storage=runs"])
