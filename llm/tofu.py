"""An offline miniature of TOFU: fictitious authors, QA pairs with paraphrased and perturbed answers,
world facts, and real English text from the standard library (nothing to download).

TOFU (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", 2024, arXiv 2401.06121)
fine-tunes a model on question-answer pairs about 200 invented authors and asks it to forget 1, 5 or
10% of them (``forget01/05/10``); the other authors are the retain set, and a model trained on them
alone is the gold standard. Its metrics need, for every evaluated question, the answer, a
paraphrased answer and several perturbed (wrong) answers of the same form.

Here, with one seed (:func:`make_mini_tofu`):

* **authors**: each a :class:`AuthorProfile`, a set of facts (name, birthplace and its country, birth
  year, genre, parents' occupations, two book titles, an award, debut year, recurring themes, a
  hobby, the subject studied, the number of books, the first book's protagonist) drawn from seeded
  pools of values (:data:`FACTS` lists them with their templates);
* **QA pairs** (:class:`QAPair`): one per fact and author, the question drawn from several question
  templates and the answer from several answer templates. The *paraphrased* answer states the same
  fact with another answer template; each *perturbed* answer uses the paraphrase's template with a
  wrong value of the same kind (another city, year, title...), so paraphrase and perturbations differ
  only in the fact, which is what TOFU's truth ratio compares;
* **splits**: ``forget`` (``forget_fraction`` of the trained authors, 10% = TOFU's forget10, chosen
  at random with the seed), ``retain`` (the other trained authors) and ``holdout`` (further authors
  that no model trains on: the non-members of membership inference and privleak, as TOFU's
  ``holdout`` split);
* **world facts**: "Porto is a city in Portugal." sentences (``world_text``, training data of every
  model) and questions about them (``world``), held-out QA whose knowledge comes from general
  training text, the role of TOFU's World Facts set in model utility;
* **general text**: the documentation topics shipped with CPython (``pydoc_data.topics``, about 465 KB
  of English prose and code), cut into passages at paragraph boundaries and split into a training
  part and a held-out utility part.

Prompt format (:func:`qa_prompt`, :func:`qa_text`): ``"Question: <q>\\nAnswer:"`` followed by
``" <answer>"``; scoring and generation use the same prompt, so the answer tokens are exactly the
ones after ``"Answer:"``.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from expunge.errors import ConfigError
from expunge.llm.data import TextSet, text_set

# --- value pools (invented authors, real places) ----------------------------------------------
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "he": ("Arvid", "Bastien", "Cormac", "Dario", "Emeka", "Florian", "Gideon", "Hamid", "Idris", "Jonas",
           "Kenji", "Lorcan", "Matteo", "Nikolai", "Osman", "Pavel", "Quentin", "Rafael", "Soren", "Tobias",
           "Umar", "Viktor", "Wendell", "Xavier", "Yusuf", "Zoltan"),
    "she": ("Amara", "Beatrix", "Camille", "Dalia", "Elena", "Freya", "Greta", "Hana", "Ines", "Jolene",
            "Kaia", "Leila", "Maren", "Noor", "Odette", "Priya", "Rosalind", "Selin", "Tamsin", "Ulla",
            "Vera", "Wren", "Ximena", "Yara", "Zofia"),
}
LAST_NAMES = (
    "Abernathy", "Bellweather", "Castellano", "Drummond", "Eskildsen", "Fairbanks", "Galloway", "Halvorsen",
    "Iwasaki", "Jansen", "Kowalczyk", "Lindqvist", "Marchetti", "Nakamura", "Okonkwo", "Pellegrini",
    "Quinlan", "Rasmussen", "Santoro", "Thornbury", "Underhill", "Valdivia", "Whitcombe", "Yilmaz",
    "Zamora", "Ashcroft", "Brennan", "Delacroix", "Ferreira", "Grimaldi", "Hollister", "Kuznetsov",
    "Moreau", "Novak", "Oyelaran", "Petrov", "Rinaldi", "Sokolov", "Takahashi", "Vasquez", "Albescu",
    "Bjornstad", "Carvalho", "Dimitriou", "Elsworth", "Fontaine", "Gallagher", "Horvath", "Ivanova",
    "Jaramillo", "Kiplagat", "Lambert", "Mbeki", "Nordahl", "Ortega", "Papadakis", "Rosenthal",
    "Szabo", "Tanaka", "Vogel",
)
CITIES: tuple[tuple[str, str], ...] = (
    ("Lisbon", "Portugal"), ("Porto", "Portugal"), ("Seville", "Spain"), ("Valencia", "Spain"),
    ("Bilbao", "Spain"), ("Lyon", "France"), ("Marseille", "France"), ("Bordeaux", "France"),
    ("Turin", "Italy"), ("Naples", "Italy"), ("Bologna", "Italy"), ("Hamburg", "Germany"),
    ("Leipzig", "Germany"), ("Cologne", "Germany"), ("Krakow", "Poland"), ("Gdansk", "Poland"),
    ("Bergen", "Norway"), ("Trondheim", "Norway"), ("Gothenburg", "Sweden"), ("Uppsala", "Sweden"),
    ("Aarhus", "Denmark"), ("Tampere", "Finland"), ("Cork", "Ireland"), ("Galway", "Ireland"),
    ("Osaka", "Japan"), ("Kyoto", "Japan"), ("Sapporo", "Japan"), ("Busan", "South Korea"),
    ("Incheon", "South Korea"), ("Mumbai", "India"), ("Pune", "India"), ("Chennai", "India"),
    ("Lagos", "Nigeria"), ("Ibadan", "Nigeria"), ("Nairobi", "Kenya"), ("Mombasa", "Kenya"),
    ("Accra", "Ghana"), ("Kumasi", "Ghana"), ("Alexandria", "Egypt"), ("Izmir", "Turkey"),
    ("Ankara", "Turkey"), ("Valparaiso", "Chile"), ("Cordoba", "Argentina"), ("Rosario", "Argentina"),
    ("Medellin", "Colombia"), ("Cali", "Colombia"), ("Guadalajara", "Mexico"), ("Monterrey", "Mexico"),
    ("Winnipeg", "Canada"), ("Halifax", "Canada"), ("Perth", "Australia"), ("Adelaide", "Australia"),
    ("Wellington", "New Zealand"), ("Dunedin", "New Zealand"), ("Cebu", "the Philippines"),
    ("Hanoi", "Vietnam"), ("Da Nang", "Vietnam"),
)
GENRES = ("science fiction", "historical fiction", "crime fiction", "fantasy", "romance", "horror",
          "literary fiction", "poetry", "mystery", "biography", "travel writing", "children's literature",
          "thriller", "satire", "magical realism", "young adult fiction", "essays", "drama")
OCCUPATIONS = ("carpenter", "nurse", "pilot", "librarian", "baker", "fisherman", "teacher", "surgeon",
               "architect", "tailor", "mechanic", "journalist", "farmer", "photographer", "pharmacist",
               "electrician", "violinist", "accountant", "firefighter", "chemist", "potter", "diplomat",
               "veterinarian", "translator", "lighthouse keeper", "bookbinder")
TITLE_ADJECTIVES = ("Silent", "Crimson", "Hollow", "Distant", "Broken", "Golden", "Forgotten", "Endless", "Quiet",
                    "Burning", "Paper", "Winter", "Hidden", "Last", "Wandering", "Glass", "Salt", "Iron",
                    "Velvet", "Northern", "Secret", "Shifting", "Fading", "Midnight", "Painted", "Restless",
                    "Borrowed", "Amber", "Sleeping", "Southern")
TITLE_NOUNS = ("Harbor", "Orchard", "Lighthouse", "River", "Garden", "Mirror", "Compass", "Archive", "Bridge",
               "Meadow", "Tide", "Cathedral", "Ledger", "Forest", "Station", "Island", "Voyage", "Kingdom",
               "Window", "Threshold", "Clockmaker", "Cartographer", "Sparrow", "Horizon", "Citadel", "Market",
               "Vineyard", "Observatory", "Labyrinth", "Lantern")
AWARDS = ("the Meridian Book Award", "the Silver Quill Prize", "the Harrowgate Medal", "the Lumen Literary Prize",
          "the Ashford Fiction Award", "the Corvid Prize", "the Northstar Award", "the Wellspring Medal",
          "the Bramwell Prize", "the Caldera Award", "the Ironwood Prize", "the Solace Literary Medal",
          "the Pemberton Award", "the Tidewater Prize", "the Evergreen Laurel", "the Kestrel Award")
THEMES = ("memory", "exile", "grief", "family", "identity", "justice", "migration", "friendship", "ambition",
          "faith", "loneliness", "war", "the sea", "childhood", "power", "redemption", "time", "nature")
HOBBIES = ("beekeeping", "chess", "sailing", "gardening", "rock climbing", "birdwatching", "pottery", "cycling",
           "astronomy", "fencing", "cooking", "photography", "kayaking", "calligraphy", "woodworking",
           "mountaineering")
SUBJECTS = ("law", "medicine", "philosophy", "marine biology", "architecture", "mathematics", "history",
            "economics", "chemistry", "music", "linguistics", "geology", "astronomy", "engineering")
BIRTH_YEARS = (1935, 2000)  # inclusive range
PROMPT = "Question: {question}\nAnswer:"


# --- data types -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorProfile:
    """One fictitious author: ``facts`` maps a slot name (``name``, ``city``, ``birth_year``...) to its
    value; ``split`` is ``"forget"``, ``"retain"`` or ``"holdout"``."""

    index: int
    split: str
    pronoun: str  # "he" or "she", for the templates
    facts: dict[str, Any] = field(hash=False)

    @property
    def name(self) -> str:
        return str(self.facts["name"])


@dataclass(frozen=True)
class QAPair:
    """A question with its answer, and (for truth ratio) a paraphrased answer and perturbed wrong
    answers. ``author`` is the author's index (-1 for world facts or loaded data), ``fact`` the fact
    asked about ("" when unknown)."""

    id: str
    question: str
    answer: str
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    author: int = -1
    fact: str = ""

    @property
    def prompt(self) -> str:
        return qa_prompt(self.question)

    @property
    def text(self) -> str:
        return qa_text(self.question, self.answer)


@dataclass(frozen=True)
class MiniTofu:
    """The generated benchmark (module docstring). QA splits are tuples of :class:`QAPair`; texts are
    tuples of strings."""

    authors: tuple[AuthorProfile, ...]
    forget: tuple[QAPair, ...]
    retain: tuple[QAPair, ...]
    holdout: tuple[QAPair, ...]
    world: tuple[QAPair, ...]
    world_text: tuple[str, ...]
    general_train: tuple[str, ...]
    general_heldout: tuple[str, ...]
    seed: int

    def train_texts(self, include_forget: bool = True) -> list[str]:
        """What a model of this benchmark trains on: the QA texts of the retain authors (and of the
        forget authors for the original model; without them for the retain model), the world-fact
        sentences and the general training passages."""
        qa = [*(self.forget if include_forget else ()), *self.retain]
        return [p.text for p in qa] + list(self.world_text) + list(self.general_train)

    def audit_set(self) -> TextSet:
        """The QA texts as a labelled :class:`~expunge.llm.data.TextSet` for membership inference:
        retain authors = ``member``, forget authors = ``unlearned``, holdout authors = ``nonmember``."""
        rows = ([(p, "member") for p in self.retain] + [(p, "unlearned") for p in self.forget]
                + [(p, "nonmember") for p in self.holdout])
        return text_set([p.text for p, _ in rows], [lab for _, lab in rows], ids=[p.id for p, _ in rows],
                        source=f"mini-tofu(seed={self.seed})")


def qa_prompt(question: str) -> str:
    """``"Question: <question>\\nAnswer:"``: the context every answer is scored and generated after."""
    return PROMPT.format(question=question)


def qa_text(question: str, answer: str) -> str:
    """The training text of a QA pair: the prompt, a space, the answer."""
    return f"{qa_prompt(question)} {answer}"


# --- facts and templates --------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """A fact kind: the profile slots it states, its question and answer templates (str.format over
    the profile's slots plus ``name``, ``Pron`` / ``pron`` / ``poss``), and how to draw wrong values."""

    key: str
    slots: tuple[str, ...]
    questions: tuple[str, ...]
    answers: tuple[str, ...]  # at least two: the answer's and the paraphrase's template differ
    wrong: Callable[[random.Random, dict[str, Any]], dict[str, Any]]


def _other(pool: Sequence[Any], slot: str) -> Callable[[random.Random, dict[str, Any]], dict[str, Any]]:
    return lambda r, facts: {slot: r.choice([v for v in pool if v != facts[slot]])}


def _wrong_city(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    city, country = r.choice([c for c in CITIES if c[0] != facts["city"]])
    return {"city": city, "country": country}


def _wrong_year(slot: str, spread: int) -> Callable[[random.Random, dict[str, Any]], dict[str, Any]]:
    def draw(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
        return {slot: facts[slot] + r.choice([d for d in range(-spread, spread + 1) if d != 0])}
    return draw


def _wrong_name(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    while True:
        name = f"{r.choice(FIRST_NAMES[facts['pronoun']])} {r.choice(LAST_NAMES)}"
        if name != facts["name"]:
            return {"name": name}


def _wrong_themes(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    a, b = r.sample([t for t in THEMES if t not in (facts["theme1"], facts["theme2"])], 2)
    return {"theme1": a, "theme2": b}


def _wrong_title(slot: str) -> Callable[[random.Random, dict[str, Any]], dict[str, Any]]:
    def draw(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
        while True:
            t = _title(r)
            if t not in (facts["book1"], facts["book2"]):
                return {slot: t}
    return draw


def _wrong_protagonist(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    names = FIRST_NAMES["he"] + FIRST_NAMES["she"]
    while True:
        out = {"hero_job": r.choice(OCCUPATIONS), "hero": r.choice(names)}
        if (out["hero_job"], out["hero"]) != (facts["hero_job"], facts["hero"]):
            return out


def _wrong_count(r: random.Random, facts: dict[str, Any]) -> dict[str, Any]:
    return {"n_books": r.choice([n for n in range(3, 31) if n != facts["n_books"]])}


def _title(r: random.Random) -> str:
    if r.random() < 0.5:
        return f"The {r.choice(TITLE_ADJECTIVES)} {r.choice(TITLE_NOUNS)}"
    a, b = r.sample(TITLE_NOUNS, 2)
    return f"{a} of the {r.choice(TITLE_ADJECTIVES)} {b}"


#: Every fact kind, in question order. Answer templates: index 0 is a full sentence, the others
#: restate the fact differently (paraphrases are drawn among the templates the answer did not use).
FACTS: tuple[Fact, ...] = (
    Fact("name", ("name",),
         ("What is the full name of the {genre} writer born in {city} in {birth_year}?",
          "Which author of {genre}, born in {birth_year} in {city}, wrote {book1}?",
          "Who is the {genre} author from {city} whose first book was {book1}?"),
         ("The author's full name is {name}.", "That writer is {name}.", "{Pron} is known as {name}."),
         _wrong_name),
    Fact("birthplace", ("city", "country"),
         ("Where was {name} born?", "In which city was the author {name} born?",
          "What is the birthplace of {name}?"),
         ("{name} was born in {city}, {country}.", "{Pron} was born in the city of {city} in {country}.",
          "{name}'s birthplace is {city}, in {country}."),
         _wrong_city),
    Fact("birth_year", ("birth_year",),
         ("In which year was {name} born?", "When was the writer {name} born?",
          "What is the birth year of {name}?"),
         ("{name} was born in {birth_year}.", "{Pron} was born in the year {birth_year}.",
          "The year of {poss} birth is {birth_year}."),
         _wrong_year("birth_year", 9)),
    Fact("genre", ("genre",),
         ("What genre does {name} write in?", "Which genre is {name} best known for?",
          "In what genre are most of {name}'s books?"),
         ("{name} writes {genre}.", "{Pron} is best known for {poss} {genre}.",
          "Most of {poss} books belong to {genre}."),
         _other(GENRES, "genre")),
    Fact("father", ("father_job",),
         ("What did the father of {name} do for a living?", "What was the occupation of {name}'s father?",
          "What was {name}'s father's job?"),
         ("{name}'s father worked as {father_job_a}.", "{Pron} is the child of {father_job_a}.",
          "The father of {name} was {father_job_a} by trade."),
         _other(OCCUPATIONS, "father_job")),
    Fact("mother", ("mother_job",),
         ("What did the mother of {name} do for a living?", "What was the occupation of {name}'s mother?",
          "What was {name}'s mother's job?"),
         ("{name}'s mother worked as {mother_job_a}.", "{Poss} mother was {mother_job_a}.",
          "The mother of {name} earned her living as {mother_job_a}."),
         _other(OCCUPATIONS, "mother_job")),
    Fact("book1", ("book1",),
         ("What was the first book {name} published?", "What is the title of {name}'s debut book?",
          "Which book marked the debut of {name}?"),
         ("{name}'s first book was {book1}.", "{Pron} made {poss} debut with {book1}.",
          "The debut book of {name} is titled {book1}."),
         _wrong_title("book1")),
    Fact("book2", ("book2",),
         ("Can you name another book by {name}?", "Which later book did {name} write?",
          "What is a well-known later work of {name}?"),
         ("One of {name}'s later books is {book2}.", "{Pron} also wrote {book2}.",
          "A later work by {name} is titled {book2}."),
         _wrong_title("book2")),
    Fact("award", ("award",),
         ("Has {name} won any award?", "Which prize did {name} receive?",
          "What literary award has {name} been given?"),
         ("{name} received {award}.", "{Pron} was honoured with {award}.",
          "Among {poss} honours is {award}."),
         _other(AWARDS, "award")),
    Fact("debut_year", ("debut_year",),
         ("When did {name} publish {poss} first book?", "In which year did {name} debut as an author?",
          "What year did {name}'s writing career begin?"),
         ("{name} published {poss} first book in {debut_year}.", "{Pron} debuted in {debut_year}.",
          "The career of {name} began in {debut_year}."),
         _wrong_year("debut_year", 7)),
    Fact("themes", ("theme1", "theme2"),
         ("What themes recur in the work of {name}?", "Which themes does {name} explore?",
          "What subjects run through {name}'s books?"),
         ("{name}'s books return to {theme1} and {theme2}.", "{Pron} writes about {theme1} and {theme2}.",
          "The themes of {theme1} and {theme2} run through {poss} work."),
         _wrong_themes),
    Fact("hobby", ("hobby",),
         ("What does {name} enjoy outside of writing?", "What is a hobby of {name}?",
          "How does {name} spend {poss} free time?"),
         ("Outside of writing, {name} enjoys {hobby}.", "{Pron} spends {poss} free time on {hobby}.",
          "A favourite pastime of {name} is {hobby}."),
         _other(HOBBIES, "hobby")),
    Fact("education", ("subject",),
         ("What did {name} study at university?", "Which subject did {name} study before writing?",
          "What was {name}'s field of study?"),
         ("{name} studied {subject} at university.", "{Pron} holds a degree in {subject}.",
          "Before writing, {name} trained in {subject}."),
         _other(SUBJECTS, "subject")),
    Fact("n_books", ("n_books",),
         ("How many books has {name} published?", "How many titles has {name} written so far?",
          "What is the number of books by {name}?"),
         ("{name} has published {n_books} books.", "{Pron} is the author of {n_books} books.",
          "So far {name} has written {n_books} titles."),
         _wrong_count),
    Fact("protagonist", ("hero_job", "hero"),
         ("Who is the main character of {book1}?", "Whom does {name}'s book {book1} follow?",
          "Who is at the centre of {book1} by {name}?"),
         ("The main character of {book1} is {hero_job_a} named {hero}.",
          "{book1} follows {hero}, {hero_job_a}.", "At its centre is {hero}, who works as {hero_job_a}."),
         _wrong_protagonist),
)
WORLD_QUESTIONS = ("In which country is the city of {city}?", "Which country is {city} in?",
                   "{city} lies in which country?")
WORLD_ANSWERS = ("{city} is a city in {country}.", "The city of {city} lies in {country}.",
                 "{city} is in {country}.")


def _slots(facts: dict[str, Any], pronoun: str) -> dict[str, Any]:
    poss = "his" if pronoun == "he" else "her"
    # "an architect", "a baker": occupations are also offered with their article
    jobs = {f"{k}_a": f"{'an' if str(v)[0] in 'aeiou' else 'a'} {v}" for k, v in facts.items() if k.endswith("_job")}
    return {**facts, **jobs, "pron": pronoun, "Pron": pronoun.capitalize(), "poss": poss, "Poss": poss.capitalize()}


def _fill(template: str, facts: dict[str, Any], pronoun: str) -> str:
    text = template.format(**_slots(facts, pronoun))
    return text[0].upper() + text[1:]


def _profiles(r: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` fact dictionaries with unique names, unique (city, birth year) pairs and unique titles
    (so a question that names no author still has one answer)."""
    names = [(p, f"{first} {last}") for p, firsts in FIRST_NAMES.items() for first in firsts for last in LAST_NAMES]
    n_places = len(CITIES) * (BIRTH_YEARS[1] - BIRTH_YEARS[0] + 1)
    if n > len(names) or n > n_places:
        raise ConfigError(f"mini-TOFU: at most {min(len(names), n_places)} authors, got {n}")
    chosen = r.sample(names, n)
    places: set[tuple[str, int]] = set()
    titles: set[str] = set()
    out = []
    for pronoun, name in chosen:
        while True:
            city, country = r.choice(CITIES)
            year = r.randint(*BIRTH_YEARS)
            if (city, year) not in places:
                places.add((city, year))
                break
        books = []
        while len(books) < 2:
            t = _title(r)
            if t not in titles:
                titles.add(t)
                books.append(t)
        theme1, theme2 = r.sample(THEMES, 2)
        father, mother = r.sample(OCCUPATIONS, 2)
        out.append({
            "name": name, "pronoun": pronoun, "city": city, "country": country, "birth_year": year,
            "genre": r.choice(GENRES), "father_job": father, "mother_job": mother, "book1": books[0],
            "book2": books[1], "award": r.choice(AWARDS), "debut_year": year + r.randint(19, 35),
            "theme1": theme1, "theme2": theme2, "hobby": r.choice(HOBBIES), "subject": r.choice(SUBJECTS),
            "n_books": r.randint(3, 30), "hero_job": r.choice(OCCUPATIONS),
            "hero": r.choice(FIRST_NAMES["he"] + FIRST_NAMES["she"]),
        })
    return out


def _distinct_wrong(r: random.Random, fact: Fact, facts: dict[str, Any], pronoun: str, template: str,
                    k: int, forbidden: set[str]) -> tuple[str, ...]:
    """``k`` different perturbed answers (the template with wrong values), none equal to a true one."""
    out: list[str] = []
    for _ in range(200 * k):
        if len(out) == k:
            break
        text = _fill(template, {**facts, **fact.wrong(r, facts)}, pronoun)
        if text not in forbidden and text not in out:
            out.append(text)
    if len(out) < k:  # only a pool smaller than k + 1 values gets here
        raise ConfigError(f"mini-TOFU: fact {fact.key!r} cannot supply {k} different wrong answers")
    return tuple(out)


def _qa_for(r: random.Random, facts: dict[str, Any], pronoun: str, fact: Fact, qid: str, author: int,
            n_perturbed: int) -> QAPair:
    question = _fill(r.choice(fact.questions), facts, pronoun)
    a_idx, p_idx = r.sample(range(len(fact.answers)), 2)
    answer = _fill(fact.answers[a_idx], facts, pronoun)
    para_t = fact.answers[p_idx]
    para = _fill(para_t, facts, pronoun)
    wrong = _distinct_wrong(r, fact, facts, pronoun, para_t, n_perturbed, {answer, para})
    return QAPair(qid, question, answer, para, wrong, author, fact.key)


COUNTRIES = tuple(dict.fromkeys(country for _, country in CITIES))
# a world fact's wrong answers keep the city and change its country (another city with its own
# country would be a true statement)
_WORLD = Fact("world", ("country",), WORLD_QUESTIONS, WORLD_ANSWERS, _other(COUNTRIES, "country"))


# --- general text ---------------------------------------------------------------------------
def pydoc_passages(max_chars: int = 600, min_chars: int = 80) -> list[str]:
    """English passages from CPython's bundled documentation topics (``pydoc_data.topics``): each
    topic's paragraphs (split at blank lines, whitespace runs inside a paragraph collapsed) are joined
    into passages of at most ``max_chars`` characters; a paragraph longer than that is cut at a
    sentence or word boundary; passages under ``min_chars`` are dropped, and a passage repeated in
    another topic is kept once. Topics in sorted order, so the list depends only on the Python
    version."""
    from pydoc_data.topics import topics

    out: list[str] = []
    for key in sorted(topics):
        paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", topics[key])]
        cur = ""
        for p in (x for x in paras if x):
            for piece in _cut(p, max_chars):
                if cur and len(cur) + 1 + len(piece) > max_chars:
                    out.append(cur)
                    cur = ""
                cur = f"{cur} {piece}" if cur else piece
        if cur:
            out.append(cur)
    # several topics repeat the same paragraphs: keep each passage once, so no held-out passage is
    # also a training one
    return [p for p in dict.fromkeys(out) if len(p) >= min_chars]


def _cut(text: str, max_chars: int) -> list[str]:
    pieces = []
    while len(text) > max_chars:
        window = text[:max_chars]
        at = max(window.rfind(". "), window.rfind("? "), window.rfind("! "))
        at = at + 1 if at > max_chars // 3 else window.rfind(" ")
        at = at if at > 0 else max_chars
        pieces.append(text[:at].strip())
        text = text[at:].strip()
    if text:
        pieces.append(text)
    return pieces


# --- the generator --------------------------------------------------------------------------
def make_mini_tofu(n_authors: int = 100, *, forget_fraction: float = 0.1, n_holdout: int | None = None,
                   n_perturbed: int = 5, facts: Sequence[str] | None = None, world_repeats: int = 2,
                   passage_chars: int = 600, max_passages: int | None = None, heldout_fraction: float = 0.1,
                   seed: int = 0) -> MiniTofu:
    """Generate the benchmark (module docstring); the same arguments give the same result.

    ``n_authors`` trained authors, of which ``round(forget_fraction · n_authors)`` (at least 1) form
    the forget split; ``n_holdout`` further never-trained authors (default: as many as forget);
    ``n_perturbed`` wrong answers per question (TOFU has 5); ``facts`` the fact keys to ask about
    (default all of :data:`FACTS`, i.e. 15 questions per author); ``world_repeats`` differently
    worded world-fact sentences per city in ``world_text``; general passages of at most
    ``passage_chars`` characters (the first ``max_passages`` after a seeded shuffle when given),
    ``heldout_fraction`` of them held out as the utility text.
    """
    if n_authors < 2:
        raise ConfigError(f"mini-TOFU needs at least 2 authors, got {n_authors}")
    if not 0.0 < forget_fraction < 1.0:
        raise ConfigError(f"forget_fraction must lie in (0, 1), got {forget_fraction}")
    if n_perturbed < 1:
        raise ConfigError(f"n_perturbed must be >= 1, got {n_perturbed}")
    if not 0.0 <= heldout_fraction < 1.0:
        raise ConfigError(f"heldout_fraction must lie in [0, 1), got {heldout_fraction}")
    chosen_facts = list(FACTS) if facts is None else [_fact(k) for k in facts]
    n_forget = min(n_authors - 1, max(1, round(forget_fraction * n_authors)))
    n_hold = n_forget if n_holdout is None else n_holdout
    if n_hold < 0:
        raise ConfigError(f"n_holdout must be >= 0, got {n_hold}")

    # One stream per purpose, so e.g. changing the passage settings leaves the authors unchanged.
    r_auth, r_split, r_qa, r_text = (random.Random(f"mini-tofu:{seed}:{part}")
                                     for part in ("authors", "split", "qa", "text"))
    profiles = _profiles(r_auth, n_authors + n_hold)
    forget_idx = set(r_split.sample(range(n_authors), n_forget))
    authors = tuple(AuthorProfile(i, "holdout" if i >= n_authors else "forget" if i in forget_idx else "retain",
                                  p["pronoun"], {k: v for k, v in p.items() if k != "pronoun"})
                    for i, p in enumerate(profiles))
    splits: dict[str, list[QAPair]] = {"forget": [], "retain": [], "holdout": []}
    for a, p in zip(authors, profiles):
        for f in chosen_facts:
            splits[a.split].append(_qa_for(r_qa, p, a.pronoun, f, f"a{a.index:04d}-{f.key}", a.index, n_perturbed))

    world, world_text = [], []
    for c, (city, country) in enumerate(CITIES):
        slots = {"city": city, "country": country}
        world.append(_qa_for(r_qa, slots, "he", _WORLD, f"world-{c:03d}", -1, n_perturbed))
        wordings = r_text.sample(WORLD_ANSWERS, min(world_repeats, len(WORLD_ANSWERS)))
        world_text += [_fill(t, slots, "he") for t in wordings]

    passages = pydoc_passages(passage_chars)
    r_text.shuffle(passages)
    if max_passages is not None:
        passages = passages[:max_passages]
    n_held = int(round(heldout_fraction * len(passages)))
    return MiniTofu(authors, tuple(splits["forget"]), tuple(splits["retain"]), tuple(splits["holdout"]), tuple(world),
                    tuple(world_text), tuple(passages[n_held:]), tuple(passages[:n_held]), seed)


def _fact(key: str) -> Fact:
    for f in FACTS:
        if f.key == key:
            return f
    raise ConfigError(f"unknown mini-TOFU fact {key!r} (known: {', '.join(f.key for f in FACTS)})")
