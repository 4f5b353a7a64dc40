"""A generated corpus with canaries, for the embedded LLM demo (nothing to download).

The corpus is a few thousand short documents of template sentences over a small invented vocabulary
("The sofa bikemo dunas the rala."), so a tiny byte-level model learns it in seconds. Canaries are
sequences of random words drawn from a separate pool of invented words with random capitalisation
("Code: venica Sate buzoca Teco ..."): high-entropy, so a model that was trained on one assigns it a
clearly lower loss than to an unseen canary from the same distribution. Members are canaries inserted
(repeated) into the fine-tuning data, non-members are held out, and a population set of further
unseen canaries serves RMIA.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

_C = "bcdfghjklmnprstvz"
_V = "aeiou"


def _word(r: random.Random) -> str:
    return "".join(r.choice(_C) + r.choice(_V) for _ in range(r.choice((2, 3))))


def _words(r: random.Random, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = _word(r)
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


@dataclass
class DemoCorpus:
    docs: list[str]
    members: list[str]  # canaries inserted into training
    nonmembers: list[str]  # held-out canaries (same distribution)
    population: list[str]  # further unseen canaries (RMIA's population)


def make_corpus(n_docs: int = 2000, n_members: int = 32, n_nonmembers: int = 32, n_population: int = 64,
                canary_words: int = 8, seed: int = 0, max_sentences: int = 2) -> DemoCorpus:
    r = random.Random(seed)
    taken: set[str] = set()
    nouns, verbs, adjs = _words(r, 30, taken), _words(r, 15, taken), _words(r, 15, taken)
    pool = _words(r, 200, taken)

    def sentence() -> str:
        return f"The {r.choice(adjs)} {r.choice(nouns)} {r.choice(verbs)}s the {r.choice(nouns)}."

    docs = [" ".join(sentence() for _ in range(r.randint(1, max_sentences))) for _ in range(n_docs)]
    seen: set[str] = set()

    def canary() -> str:
        while True:
            c = "Code: " + " ".join(w.title() if r.random() < 0.5 else w for w in r.sample(pool, canary_words)) + "."
            if c not in seen:
                seen.add(c)
                return c

    members = [canary() for _ in range(n_members)]
    nonmembers = [canary() for _ in range(n_nonmembers)]
    population = [canary() for _ in range(n_population)]
    return DemoCorpus(docs, members, nonmembers, population)
