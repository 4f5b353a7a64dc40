"""Scoring and unlearning on a local Ray: sharded actors give the in-process numbers, merged by id."""
from __future__ import annotations

import numpy as np
import pytest

from expunge.errors import ExpungeError
from expunge.llm.data import text_set
from expunge.llm.models import load_causal_lm, tiny_gpt2
from expunge.llm.scoring import FIELDS, ScoringSettings, token_logprobs
from expunge.store import Store

TEXTS = [f"Sequence {i}: " + "word " * (i % 7 + 1) for i in range(11)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_models")
    out = {}
    for seed in (0, 1):
        model, tok = tiny_gpt2(n_layer=1, n_embd=16, n_head=2, n_positions=64, seed=seed)
        model.save_pretrained(root / f"m{seed}")
        tok.save_pretrained(root / f"m{seed}")
        out[seed] = str(root / f"m{seed}")
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_ray_scoring_matches_in_process_and_unlearning_task_stores(ray_local, saved, tmp_path):
    from expunge.llm.parallel import ModelSpec, RayScorer, unlearn_on_ray

    data = text_set(TEXTS, ids=[f"id{i}" for i in range(len(TEXTS))])
    with RayScorer(n_actors=2) as pool:
        assert len(pool.actors) == 2
        for seed in (0, 1):  # one pool, two models loaded in turn
            pool.load(ModelSpec(saved[seed]))
            got = pool.score(data, batch_tokens=64)
            model, tok = load_causal_lm(saved[seed])
            want = token_logprobs(model, tok, data.texts, data.ids)
            assert got.ids == list(data.ids)
            np.testing.assert_array_equal(got.offsets, want.offsets)
            for f in FIELDS:
                np.testing.assert_allclose(getattr(got, f), getattr(want, f), atol=2e-5, err_msg=f)
        # a user error inside an actor comes back as the same one-line ExpungeError
        with pytest.raises(ExpungeError, match="no token left"):
            pool.score(data, ScoringSettings(prefix_tokens=500))

    forget, retain = TEXTS[:3], TEXTS[3:]
    (res,) = unlearn_on_ray([{"model_path": saved[0], "forget": forget, "retain": retain, "store_uri": str(tmp_path),
                              "key": "u", "cfg": {"method": "grad_diff", "lr": 5e-3, "steps": 5, "batch_size": 3}}])
    assert res["key"] == "u" and res["steps"] == 5
    art = Store(str(tmp_path)).get("llm_models", "u")
    assert art.manifest["config"]["unlearn"]["method"] == "grad_diff"
    before = token_logprobs(*load_causal_lm(saved[0]), forget).nll().mean()
    after = token_logprobs(*load_causal_lm(art.path), forget).nll().mean()
    assert after > before
