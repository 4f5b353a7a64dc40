"""The offline miniature of TOFU: determinism, the forget10 split, the answer forms truth ratio needs,
world facts and the standard-library text."""
from __future__ import annotations

import pytest

from expunge.errors import ConfigError
from expunge.llm.tofu import CITIES, FACTS, make_mini_tofu, pydoc_passages, qa_prompt, qa_text


@pytest.fixture(scope="module")
def bench():
    return make_mini_tofu(40, seed=3, max_passages=200)


def test_same_seed_same_benchmark_other_seed_other_authors(bench):
    again = make_mini_tofu(40, seed=3, max_passages=200)
    assert again == bench
    other = make_mini_tofu(40, seed=4, max_passages=200)
    assert [a.name for a in other.authors] != [a.name for a in bench.authors]
    # each part has its own random stream: other passage settings leave the authors and QA alone
    fewer = make_mini_tofu(40, seed=3, max_passages=50, passage_chars=300)
    assert fewer.authors == bench.authors and fewer.forget == bench.forget and fewer.retain == bench.retain


def test_forget_is_ten_percent_of_the_trained_authors_and_holdout_is_apart(bench):
    by = {s: [a for a in bench.authors if a.split == s] for s in ("forget", "retain", "holdout")}
    assert (len(by["forget"]), len(by["retain"]), len(by["holdout"])) == (4, 36, 4)
    assert len({a.name for a in bench.authors}) == len(bench.authors)  # names are unique
    n_facts = len(FACTS)
    assert len(bench.forget) == 4 * n_facts and len(bench.retain) == 36 * n_facts and len(bench.holdout) == 4 * n_facts
    forget_ids = {a.index for a in by["forget"]}
    assert {q.author for q in bench.forget} == forget_ids
    assert not forget_ids & {q.author for q in bench.retain}
    assert {q.author for q in bench.holdout} == {a.index for a in by["holdout"]}
    big = make_mini_tofu(200, max_passages=10)
    assert sum(a.split == "forget" for a in big.authors) == 20  # TOFU's forget10 of 200 authors
    assert len({q.id for q in big.forget + big.retain + big.holdout + big.world}) == len(
        big.forget + big.retain + big.holdout + big.world)


def test_every_question_has_an_answer_a_paraphrase_and_distinct_perturbations(bench):
    for q in bench.forget + bench.retain + bench.holdout + bench.world:
        assert q.paraphrased_answer and q.paraphrased_answer != q.answer
        assert len(q.perturbed_answers) == 5 and len(set(q.perturbed_answers)) == 5
        assert not {q.answer, q.paraphrased_answer} & set(q.perturbed_answers)


def test_answers_state_the_profile_and_perturbations_change_only_the_fact(bench):
    author = bench.authors[bench.forget[0].author]
    f = author.facts
    qa = {q.fact: q for q in bench.forget if q.author == author.index}
    assert set(qa) == {fact.key for fact in FACTS}
    assert f["city"] in qa["birthplace"].answer and f["country"] in qa["birthplace"].answer
    year = str(f["birth_year"])
    assert year in qa["birth_year"].answer and year in qa["birth_year"].paraphrased_answer
    assert f["book1"] in qa["book1"].paraphrased_answer
    for wrong in qa["birth_year"].perturbed_answers:
        # the paraphrase's sentence with another year
        year = next(tok.strip(".") for tok in wrong.split() if tok.strip(".").isdigit())
        assert year != str(f["birth_year"])
        assert wrong.replace(year, str(f["birth_year"])) == qa["birth_year"].paraphrased_answer
    assert author.name not in qa["name"].question and author.name in qa["name"].answer


def test_world_facts_are_in_the_training_text_and_their_perturbations_keep_the_city(bench):
    assert len(bench.world) == len(CITIES)
    text = " ".join(bench.world_text)
    for q, (city, country) in zip(bench.world, CITIES):
        assert city in q.question and country in q.answer
        assert f"{city} " in text and all(city in w and country not in w for w in q.perturbed_answers)


def test_general_text_comes_from_pydoc_and_is_split_train_heldout():
    passages = pydoc_passages(max_chars=400)
    assert len(passages) > 500 and all(80 <= len(p) <= 400 for p in passages)
    b = make_mini_tofu(10, heldout_fraction=0.1, passage_chars=400)
    assert len(b.general_heldout) == round(0.1 * len(passages))
    assert set(b.general_train) | set(b.general_heldout) == set(passages)
    assert not set(b.general_train) & set(b.general_heldout)


def test_training_texts_and_audit_set(bench):
    q = bench.forget[0]
    assert q.prompt == qa_prompt(q.question) == f"Question: {q.question}\nAnswer:"
    assert q.text == qa_text(q.question, q.answer) == f"{q.prompt} {q.answer}"
    original, retain = bench.train_texts(), bench.train_texts(include_forget=False)
    assert q.text in original and q.text not in retain
    assert len(original) - len(retain) == len(bench.forget)
    assert not {h.text for h in bench.holdout} & set(original)
    ts = bench.audit_set()
    assert ts.counts() == {"member": len(bench.retain), "unlearned": len(bench.forget),
                           "nonmember": len(bench.holdout)}


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="forget_fraction"):
        make_mini_tofu(10, forget_fraction=0.0)
    with pytest.raises(ConfigError, match="unknown mini-TOFU fact 'shoe_size'"):
        make_mini_tofu(10, facts=["genre", "shoe_size"])
    with pytest.raises(ConfigError, match="cannot supply 30"):
        make_mini_tofu(3, facts=["genre"], n_perturbed=30, max_passages=1)
    only = make_mini_tofu(10, facts=["genre", "award"], n_perturbed=2, max_passages=5)
    assert {q.fact for q in only.retain} == {"genre", "award"}
    assert len(only.general_train) + len(only.general_heldout) == 5
