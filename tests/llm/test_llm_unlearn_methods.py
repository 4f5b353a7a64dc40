"""SimNPO and RMU: losses by hand, their effect on a tiny model that memorised its forget strings, the
RMU layer check and parameter restriction, prompt/answer items, and every method's search space."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch

from expunge.errors import ConfigError, ExpungeError
from expunge.llm.models import tiny_gpt2
from expunge.llm.qa_scoring import answer_token_scores
from expunge.llm.scoring import token_logprobs
from expunge.llm.train import torch_threads, train_lm
from expunge.llm.unlearn import (LLM_METHODS, LLMUnlearnConfig, _Ctx, check_inputs, layer_hidden, make_batch,
                                 make_config, rmu_direction, search_space, unlearn_lm)
from expunge.unlearn.space import endpoints

FORGET = ["Code: Kavu bedo Sipa runo.", "Code: lomi Tuka vesa pido."]
RETAIN = ["The red cat eats the fish.", "The blue dog sees the bird.", "The old man reads the book.",
          "A green frog sits on a log."]
CPU = torch.device("cpu")


def _no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    # GPT-2's 0.1 dropout puts a noise floor under RMU's retain distance (the trained model runs in
    # train mode, the frozen one in eval mode); the 7B models of the papers have no dropout
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _hf_mean_nll(model: torch.nn.Module, tok, text: str) -> float:
    """ℓ̄ of one unpadded text through Hugging Face's own ``labels=`` loss."""
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def _log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z))


# --- SimNPO ----------------------------------------------------------------------------------
def test_simnpo_loss_by_hand():
    model, tok = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=3)
    f = make_batch(tok, FORGET + ["Short."], None, CPU)  # unequal lengths: padding must not count
    r = make_batch(tok, RETAIN, None, CPU)
    cfg = make_config(method="simnpo", simnpo_beta=2.0, simnpo_margin=0.7, gamma=0.5, alpha=0.3)
    with torch.no_grad():
        loss = LLM_METHODS.get("simnpo")(model, f, r, _Ctx(cfg, None)).item()
        retain = model(**r).loss.item()
    per_token = [_hf_mean_nll(model, tok, t) for t in FORGET + ["Short."]]
    forget = -(2 / 2.0) * np.mean([_log_sigmoid(2.0 * x - 0.7) for x in per_token])
    assert loss == pytest.approx(0.5 * forget + 0.3 * retain, rel=1e-5)


def test_simnpo_at_a_margin_equal_to_the_reward_is_two_over_beta_log_two():
    model, tok = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=3)
    beta = 4.5
    margin = beta * _hf_mean_nll(model, tok, FORGET[0])  # logsigmoid(β ℓ̄ − m) = logsigmoid(0)
    cfg = make_config(method="simnpo", simnpo_margin=margin, gamma=1.0, alpha=0.0)
    with torch.no_grad():
        loss = LLM_METHODS.get("simnpo")(model, make_batch(tok, FORGET[:1], None, CPU), None, _Ctx(cfg, None))
    assert loss.item() == pytest.approx(2 / beta * math.log(2), rel=1e-5)


def test_simnpo_defaults_and_one_name_per_hyperparameter():
    c = make_config(method="simnpo")
    assert (c.simnpo_beta, c.simnpo_margin, c.gamma, c.alpha) == (4.5, 0.0, 0.125, 1.0)
    assert c.beta == 0.1  # NPO's β is a different field, untouched
    assert make_config(method="simnpo", gamma=1.0).gamma == 1.0  # a given value wins
    assert make_config(method="npo").gamma == 1.0 and make_config().gamma == 1.0


def test_simnpo_on_prompt_answer_items_scores_the_answer_tokens_only():
    model, tok = tiny_gpt2(n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=3)
    pairs = [("Q: Who wrote Kavu?\nA:", " Sipa runo."), ("Q: Where is Tuka?\nA:", " In vesa pido, far away.")]
    batch = make_batch(tok, pairs, None, CPU)
    n_prompt = len(tok.encode(pairs[0][0]))
    assert (batch["labels"][0, :n_prompt] == -100).all() and (batch["labels"][0, n_prompt:n_prompt + 3] >= 0).all()
    # the answer-token NLLs of the QA scorer, the same tokenisation (tokens(prompt) + tokens(answer))
    per_token = answer_token_scores(model, tok, [p for p, _ in pairs], [a for _, a in pairs]).nll()
    cfg = make_config(method="simnpo", alpha=0.0, gamma=1.0)
    with torch.no_grad():
        loss = LLM_METHODS.get("simnpo")(model, batch, None, _Ctx(cfg, None)).item()
    assert loss == pytest.approx(-(2 / 4.5) * np.mean([_log_sigmoid(4.5 * x) for x in per_token]), rel=1e-5)
    mixed = make_batch(tok, [FORGET[0], pairs[0]], None, CPU)  # texts and pairs in one batch
    assert (mixed["labels"][0, :len(tok.encode(FORGET[0]))] >= 0).all()
    with pytest.raises(ExpungeError, match="no answer token left within max_length=5"):
        make_batch(tok, pairs, 5, CPU)
    with pytest.raises(ExpungeError, match="empty text"):
        check_inputs(cfg, [("Q: x?", "  ")], RETAIN)


# --- RMU -------------------------------------------------------------------------------------
def test_rmu_direction_is_a_seeded_uniform_unit_vector():
    u = rmu_direction(64, seed=5)
    raw = torch.rand(64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(u.double(), raw / raw.norm(), atol=1e-7)
    assert u.norm().item() == pytest.approx(1.0, abs=1e-6) and (u >= 0).all()
    assert torch.equal(u, rmu_direction(64, seed=5)) and not torch.equal(u, rmu_direction(64, seed=6))


def test_layer_hidden_is_the_block_output(monkeypatch):
    model, tok = tiny_gpt2(n_layer=3, n_embd=32, n_head=2, n_positions=64, seed=1)
    b = make_batch(tok, FORGET, None, CPU)
    with torch.no_grad():
        hs = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                   output_hidden_states=True).hidden_states
        assert len(hs) == 4  # entry 0: the embeddings; entry k: block k − 1's output
        for layer in (0, 1):
            assert torch.allclose(layer_hidden(model, b, layer), hs[layer + 1], atol=1e-6)
        # the last block: HF's last entry has the final norm applied, the block's own output has not
        last = layer_hidden(model, b, 2)
        assert not torch.allclose(last, hs[3], atol=1e-3)
        assert torch.allclose(model.transformer.ln_f(last), hs[3], atol=1e-5)
        # no block list found: the tuple entry
        monkeypatch.setattr("expunge.llm.unlearn._decoder_blocks", lambda m: None)
        assert torch.allclose(layer_hidden(model, b, 1), hs[2], atol=1e-6)


def test_rmu_loss_by_hand():
    model, tok = tiny_gpt2(n_layer=3, n_embd=32, n_head=2, n_positions=64, seed=2)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        ref.transformer.h[0].mlp.c_fc.weight.add_(0.05)  # a frozen model that differs
    layer, c, seed = 1, 3.0, 11
    cfg = make_config(method="rmu", rmu_layer=layer, rmu_steering=c, rmu_alpha=7.0, gamma=0.5, seed=seed)
    f = make_batch(tok, FORGET + ["Short."], None, CPU)
    r = make_batch(tok, RETAIN[:2] + ["Hi."], None, CPU)

    def hidden(m, batch):  # through HF's tuple, entry layer + 1 (0 = embeddings)
        out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        return out.hidden_states[layer + 1].double().numpy()

    def by_hand(h, target, lengths):  # per sequence: mean over its tokens of (1/d)‖h_t − target_t‖²
        return np.mean([np.mean(((h[i, :n] - target[i, :n]) ** 2).mean(-1)) for i, n in enumerate(lengths)])

    with torch.no_grad():
        loss = LLM_METHODS.get("rmu")(model, f, r, _Ctx(cfg, None, lambda b: layer_hidden(ref, b, layer))).item()
        hf, hr, href = hidden(model, f), hidden(model, r), hidden(ref, r)
    u = torch.rand(32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    cu = np.broadcast_to(c * u / np.linalg.norm(u), hf.shape)
    lf = by_hand(hf, cu, f["attention_mask"].sum(1).tolist())
    lr = by_hand(hr, href, r["attention_mask"].sum(1).tolist())
    assert lr > 0
    assert loss == pytest.approx(0.5 * lf + 7.0 * lr, rel=1e-5)


def test_rmu_layer_out_of_range_is_one_line_before_training():
    model, tok = tiny_gpt2(n_layer=2, n_embd=16, n_head=2, n_positions=64, seed=0)
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    before = [p.clone() for p in model.parameters()]
    cfg = make_config(method="rmu", rmu_layer=2, steps=1)
    with pytest.raises(ConfigError) as exc:
        unlearn_lm(model, tok, FORGET, RETAIN, cfg)
    msg = str(exc.value)
    assert "\n" not in msg and "rmu_layer 2 is out of range for a model with 2 layers (0..1)" in msg
    assert not calls and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ConfigError, match="2 layers"):
        check_inputs(cfg, FORGET, RETAIN, model)
    deeper, _ = tiny_gpt2(n_layer=4, n_embd=16, n_head=2, n_positions=64, seed=0)
    with pytest.raises(ConfigError, match="2 layers"):  # a reference model shallower than rmu_layer
        unlearn_lm(deeper, tok, FORGET, RETAIN, cfg, ref_model=model)
    with pytest.raises(ConfigError, match="rmu_layer"):
        make_config(method="rmu", rmu_layer=-1)
    check_inputs(make_config(method="npo", rmu_layer=9), FORGET, RETAIN, model)  # only RMU reads it


def test_rmu_needs_a_retain_set_unless_its_weight_is_zero():
    model, tok = tiny_gpt2(n_layer=2, n_embd=16, n_head=2, n_positions=64, seed=0)
    with pytest.raises(ExpungeError, match=r"needs a retain set \(or rmu_alpha=0\)"):
        unlearn_lm(model, tok, FORGET, [], make_config(method="rmu", rmu_layer=1))
    _, stats = unlearn_lm(model, tok, FORGET, [], make_config(method="rmu", rmu_layer=1, rmu_alpha=0.0, steps=1))
    assert stats["steps"] == 1


@pytest.mark.parametrize("option", ["mlp_out", "mlp"])
def test_rmu_updates_only_the_mlp_of_blocks_l_minus_2_to_l(option):
    model, tok = tiny_gpt2(n_layer=4, n_embd=16, n_head=2, n_positions=64, seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out, stats = unlearn_lm(model, tok, FORGET, RETAIN, make_config(method="rmu", rmu_layer=3, rmu_params=option,
                                                                   lr=1e-2, steps=3, batch_size=2))
    changed = {n for n, p in out.named_parameters() if not torch.equal(p, before[n])}
    if option == "mlp_out":  # WMDP's choice: the MLP output projection's weight of blocks 1, 2, 3
        assert changed == {f"transformer.h.{i}.mlp.c_proj.weight" for i in (1, 2, 3)}
    else:
        assert changed == {f"transformer.h.{i}.mlp.{m}.{w}" for i in (1, 2, 3) for m in ("c_fc", "c_proj")
                           for w in ("weight", "bias")}
    assert stats["rmu_updated"] == f"{option} of blocks 1..3"
    assert all(p.requires_grad for p in out.parameters())  # the caller's flags come back


# --- effect on a model that memorised its forget strings -------------------------------------
@pytest.fixture(scope="module")
def memorised():
    """A 3-block GPT-2 trained on FORGET + RETAIN until both are near-memorised (mean NLL < 0.3)."""
    with torch_threads(1):  # one thread: far faster than two on a shared 2-core CPU (train_lm's note)
        model, tok = tiny_gpt2(n_layer=3, n_embd=32, n_head=2, n_positions=64, seed=0)
        train_lm(_no_dropout(model), tok, FORGET + RETAIN, steps=160, batch_size=6, lr=1e-2, seed=0)
    return model, tok


# Thresholds: the margin (rise of the forget NLL) − (rise of the retain NLL) measured with these exact
# settings on memorised models of seeds 0, 1, 2 (fixture and unlearning seeded alike):
#   simnpo           0.77, 1.37, 0.45
#   rmu (mlp_out)    1.12, 1.55, 1.41
#   rmu (all)        2.46, 4.46, 2.42
# the tests run seed 0 and ask for about a third of the smallest margin. RMU's weights are sized for
# the tiny model (rmu_alpha 1 / 10; WMDP's 1200 fits 4096-wide 7B activations and keeps this model's
# 32-wide ones pinned), lr 1e-2 as for any model trained from scratch (module docstring).
CASES = {
    "simnpo": (dict(method="simnpo", lr=5e-3, steps=8), 0.15),
    "rmu_mlp_out": (dict(method="rmu", lr=1e-2, steps=32, rmu_layer=1, rmu_alpha=1.0), 0.4),
    "rmu_all": (dict(method="rmu", lr=1e-2, steps=16, rmu_layer=1, rmu_alpha=10.0, rmu_params="all"), 0.8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unlearning_raises_the_forget_nll_more_than_the_retain_nll(memorised, case):
    model, tok = memorised
    kw, threshold = CASES[case]
    before_f = token_logprobs(model, tok, FORGET).nll().mean()
    before_r = token_logprobs(model, tok, RETAIN).nll().mean()
    assert before_f < 0.3 and before_r < 0.3
    with torch_threads(1):
        out, stats = unlearn_lm(copy.deepcopy(model), tok, FORGET, RETAIN, make_config(batch_size=2, seed=0, **kw))
    rise_f = token_logprobs(out, tok, FORGET).nll().mean() - before_f
    rise_r = token_logprobs(out, tok, RETAIN).nll().mean() - before_r
    assert stats["steps"] == kw["steps"] and not out.training
    assert rise_f - rise_r > threshold, (rise_f, rise_r)


# --- search spaces ---------------------------------------------------------------------------
def test_every_method_has_a_search_space_of_config_fields():
    own = {"ga": set(), "grad_diff": {"alpha"}, "npo": {"beta"}, "simnpo": {"simnpo_beta", "simnpo_margin"},
           "rmu": {"rmu_layer", "rmu_steering"}}
    assert set(LLM_METHODS) == set(own)
    rng = random.Random(0)
    for method in LLM_METHODS:
        for lora in (False, True):
            space = LLMUnlearnConfig.search_space(method, lora=lora, num_layers=32)
            assert set(space) == {"lr", "epochs"} | own[method] | ({"lora_r"} if lora else set())
            assert set(space) <= set(LLMUnlearnConfig.model_fields)
            for key, domain in space.items():  # every value a sweep can draw is a valid config
                for v in endpoints(domain) + [domain.sample(rng)]:
                    make_config(method=method, lora=lora, **{key: v})
    assert search_space("rmu", num_layers=32)["rmu_layer"].args == (5, 7, 9)  # WMDP's 7 of 32, and around
    assert search_space("rmu")["rmu_layer"].args == (5, 7, 9)
    for n in (1, 2, 3, 12):  # a shallow model's choices stay in range
        assert set(search_space("rmu", num_layers=n)["rmu_layer"].args) <= set(range(n))
