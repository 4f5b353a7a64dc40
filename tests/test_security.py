"""Trust boundaries: Hugging Face code stays off unless asked; artifacts never leave the run directory."""
from __future__ import annotations

import pytest

from expunge.errors import ArtifactError


def test_hf_models_load_without_remote_code_unless_asked(tmp_path, monkeypatch):
    import transformers

    from expunge.llm import load_causal_lm

    seen = []

    class Spy:
        @staticmethod
        def from_pretrained(source, **kwargs):
            seen.append(kwargs.get("trust_remote_code"))
            raise OSError("stop here")  # the flag is what this test checks

    monkeypatch.setattr(transformers, "AutoTokenizer", Spy)
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Spy)
    (tmp_path / "m").mkdir()
    for opt_in in (False, True):
        with pytest.raises(Exception):
            load_causal_lm(str(tmp_path / "m"), **({"trust_remote_code": True} if opt_in else {}))
    assert seen and seen[0] is False and seen[-1] is True


@pytest.mark.parametrize("kind,key", [("models", "../escape"), ("models", "/abs"), ("../x", "k"),
                                      ("models", "a/../../b"), ("sweeps", "..")])
def test_artifact_paths_cannot_escape_the_run(tmp_path, kind, key):
    from expunge.store import Store

    store = Store(str(tmp_path / "run"))
    with pytest.raises(ArtifactError, match="invalid artifact"):
        store.put(kind, key, {"a.json": {"x": 1}})
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()
