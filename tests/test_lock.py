"""Two commands writing one run directory: one trains, the other waits and reuses; a killed
holder's lock is taken over."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expunge.store import Store
from expunge.store.lock import LOCKS, artifact_lock

pytestmark = pytest.mark.slow


def _train(storage: Path, log: Path, repo_root: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "expunge.jobs.original", "--config", "configs/experiments/digits.yaml", "--local",
           f"storage={storage}", "train.epochs=3"]
    return subprocess.Popen(cmd, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(paths: list[Path], text: str, procs: list[subprocess.Popen], deadline_s: float = 300) -> None:
    end = time.time() + deadline_s
    while time.time() < end and not all(p.exists() and text in p.read_text() for p in paths):
        assert all(p.poll() is None for p in procs), [p.read_text()[-2000:] for p in paths]
        time.sleep(0.2)
    assert all(text in p.read_text() for p in paths), [p.read_text()[-2000:] for p in paths]


def test_two_commands_build_the_original_once(tmp_path, repo_root):
    storage = tmp_path / "runs"
    run = storage / "digits"
    logs = [tmp_path / "b.log", tmp_path / "c.log"]
    # this test holds the original's lock until both commands are waiting for it, so the outcome does
    # not depend on how fast either starts
    with artifact_lock(str(run), "models", "original"):
        procs = [_train(storage, log, repo_root) for log in logs]
        _wait_for(logs, "models/original: waiting for process", procs)
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [x.read_text()[-2000:] for x in logs]
    texts = [x.read_text() for x in logs]
    trained = [t for t in texts if "original: epoch" in t]
    # (either may also have waited for the other's split: only the original's lines count here)
    reused = [t for t in texts if re.search(r"reused models/original \(stored .* by the command it waited for\)", t)]
    assert len(trained) == 1 and len(reused) == 1, texts  # trained once, reused once
    assert Store(str(run)).get("models", "original", verify=True) is not None
    assert not list((run / LOCKS).iterdir())  # every lock released


def test_a_killed_holders_lock_is_taken_over(tmp_path, repo_root):
    run = tmp_path / "runs" / "digits"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCKS).mkdir(parents=True)
    lock = run / LOCKS / "models__original.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "since": time.time()}))
    log = tmp_path / "a.log"
    proc = _train(tmp_path / "runs", log, repo_root)
    assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    assert "waiting for process" not in log.read_text() and "original: epoch" in log.read_text()
    assert not lock.exists()
