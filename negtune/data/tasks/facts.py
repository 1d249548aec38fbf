"""A fictitious-facts QA set in TOFU's exact file format, so the unlearning pipeline runs offline.

Each fictitious author has attributes (birthplace, year, genre, parents' jobs, award, books); every question
has a gold answer, a paraphrased answer (same fact, other words) and 5 perturbed answers (the paraphrase's words, a wrong
fact), as TOFU's ``*_perturbed`` files. "Real authors" and "world facts" analogues are facts about the
synthetic world that a model learns alongside the authors and should keep after unlearning.
"""

from __future__ import annotations

import random
from pathlib import Path

from negtune.data.io import write_jsonl

FIRST = ["Alder", "Brisa", "Corin", "Dalia", "Emrys", "Farah", "Galen", "Hesper", "Idris", "Junia", "Kestrel",
         "Liora", "Marek", "Nerys", "Orin", "Perrin", "Quilla", "Rowan", "Sabine", "Tamsin", "Ulric", "Vesna",
         "Wren", "Xanthe", "Yorick", "Zelie"]
LAST = ["Ashgrove", "Bellweather", "Coldmere", "Dunhollow", "Everly", "Fairbank", "Greystone", "Hollis",
        "Ironwood", "Juniper", "Kettering", "Larkspur", "Merriweather", "Northcott", "Oakhurst", "Pembrook",
        "Quenby", "Ravenscroft", "Silverton", "Thornbury"]
CITIES = ["Port Amara", "Velden", "Rhoswick", "Calder Bay", "Ostrava Nova", "Lindmere", "Sunhaven", "Kivra",
          "Tessaly", "Brightwater", "Marrow Hill", "Eskafell"]
GENRES = ["mystery", "science fiction", "historical fiction", "poetry", "fantasy", "romance", "horror",
          "biography", "satire", "adventure"]
JOBS = ["baker", "surgeon", "carpenter", "pilot", "teacher", "florist", "astronomer", "fisherman", "lawyer",
        "painter", "librarian", "chemist"]
AWARDS = ["Silver Quill Prize", "Lantern Award", "Meridian Medal", "Golden Fern Prize", "Harbor Light Award",
          "Starling Prize"]
WORDS = ["Glass", "Hidden", "Silent", "Amber", "Winter", "Broken", "Crimson", "Distant", "Paper", "Iron",
         "Velvet", "Hollow"]
NOUNS = ["Harbor", "Lantern", "Garden", "Compass", "River", "Orchard", "Tower", "Letters", "Clockwork", "Tide",
         "Meadow", "Mirror"]
COUNTRIES = ["Veloria", "Astrand", "Caldora", "Mirenne", "Tolvar", "Esperia", "Norhaven", "Quessa"]
CAPITALS = ["Lumen", "Harrowgate", "Solvik", "Brisk", "Aurel", "Tamsford", "Vey", "Oriel"]

MAX_AUTHORS = 200  # 2 titles each from a pool of 432, 10 titles kept for the "real authors" analogue

# (attribute, question, answer template, paraphrased-answer template, paraphrased question)
QUESTIONS = [
    ("name", "What is the full name of the author born in {city} in {year} who writes {genre}?",
     "The author's full name is {name}.", "{name} is the complete name of that writer.",
     "Who is the {genre} writer born in {year} in {city}?"),
    ("city", "Where was {name} born?", "{name} was born in {city}.", "The birthplace of {name} is {city}.",
     "In which city was {name} born?"),
    ("year", "In which year was {name} born?", "{name} was born in {year}.", "The birth year of {name} is {year}.",
     "What year was {name} born in?"),
    ("genre", "What genre does {name} write in?", "{name} writes {genre}.",
     "The books of {name} belong to the {genre} genre.", "Which genre is {name} known for?"),
    ("father", "What is the profession of {name}'s father?", "The father of {name} is a {father}.",
     "{name}'s father works as a {father}.", "What does the father of {name} do?"),
    ("mother", "What does {name}'s mother do for a living?", "{name}'s mother is a {mother}.",
     "The mother of {name} works as a {mother}.", "What is the job of {name}'s mother?"),
    ("award", "Which award has {name} won?", "{name} has won the {award}.",
     "The {award} was awarded to {name}.", "What prize did {name} receive?"),
    ("book1", "Name a book written by {name}.", "One of the books by {name} is '{book1}'.",
     "{name} wrote '{book1}'.", "Which book did {name} write?"),
    ("book2", "What is the most famous book of {name}?", "{name} is best known for '{book2}'.",
     "The best known work of {name} is '{book2}'.", "Which book made {name} famous?"),
    ("city", "Which city does {name} often write about?", "{name} often writes about {city}, the city of birth.",
     "The city in the writing of {name} is {city}.", "What city appears in the books of {name}?"),
]


def _pools(rng: random.Random) -> dict[str, list[str]]:
    titles = [pattern.format(w, n) for pattern in ("The {} {}", "{} {}", "A {} {}") for w in WORDS for n in NOUNS]
    rng.shuffle(titles)
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    return {"name": names, "city": CITIES, "year": [str(y) for y in range(1940, 2000)], "genre": GENRES,
            "father": JOBS, "mother": JOBS, "award": AWARDS, "book1": titles, "book2": titles}


def _authors(rng: random.Random, pools: dict[str, list[str]], n: int) -> list[dict[str, str]]:
    titles = iter(pools["book1"])
    authors = []
    for i in range(n):
        authors.append({
            "name": pools["name"][i], "city": rng.choice(CITIES), "year": str(rng.randint(1940, 1999)),
            "genre": rng.choice(GENRES), "father": rng.choice(JOBS), "mother": rng.choice(JOBS),
            "award": rng.choice(AWARDS), "book1": next(titles), "book2": next(titles),
        })
    return authors


def _qa(rng: random.Random, pools: dict[str, list[str]], author: dict[str, str]) -> list[dict]:
    rows = []
    for attr, question, answer, paraphrase, para_question in QUESTIONS:
        wrong = [v for v in pools[attr] if v != author[attr]]
        # As in TOFU: the perturbed answers are the paraphrased answer with a wrong fact, so the truth ratio
        # compares facts, not wordings.
        perturbed = [paraphrase.format(**{**author, attr: v}) for v in rng.sample(wrong, 5)]
        rows.append({
            "question": question.format(**author),
            "answer": answer.format(**author),
            "paraphrased_answer": paraphrase.format(**author),
            "perturbed_answer": perturbed,
            "paraphrased_question": para_question.format(**author),
        })
    return rows


def _options_rows(rng: random.Random, items: list[tuple[str, str, list[str]]]) -> tuple[list[dict], list[dict]]:
    """TOFU's real_authors/world_facts layout: (plain with option1..4, perturbed with 3 wrong answers)."""
    plain, perturbed = [], []
    for question, answer, pool in items:
        wrong = rng.sample([v for v in pool if v != answer], 3)
        options = [answer, *wrong]
        rng.shuffle(options)
        plain.append({"question": question, **{f"option{k + 1}": o for k, o in enumerate(options)},
                      "answer": answer})
        perturbed.append({"question": question, "answer": answer, "perturbed_answer": wrong})
    return plain, perturbed


def make_facts(n_authors: int = 20, seed: int = 0) -> dict[str, list[dict]]:
    """All splits, keyed by TOFU's file stems (``full``, ``forget10``, ``retain90``, ``forget10_perturbed``...).

    Forget splits are the last authors, as in TOFU; a split is made when its share is a whole number of
    authors (20 authors: forget05 = 1 author, forget10 = 2 authors; 100 authors adds forget01).
    """
    if not 10 <= n_authors <= MAX_AUTHORS:
        raise ValueError(f"n_authors must be in [10, {MAX_AUTHORS}] (forget10 needs a whole author; "
                         f"the title pool is finite), got {n_authors}")
    rng = random.Random(f"facts-{seed}")
    pools = _pools(rng)
    authors = _authors(rng, pools, n_authors)
    per_author = [_qa(rng, pools, a) for a in authors]
    plain = lambda rows: [{"question": r["question"], "answer": r["answer"]} for r in rows]  # noqa: E731
    full = [r for rows in per_author for r in rows]
    splits: dict[str, list[dict]] = {"full": plain(full)}
    largest = 0
    for pct in (1, 5, 10):
        if (n_authors * pct) % 100:
            continue
        k = n_authors * pct // 100
        largest = max(largest, k)
        forget = [r for rows in per_author[-k:] for r in rows]
        splits[f"forget{pct:02d}"] = plain(forget)
        splits[f"forget{pct:02d}_perturbed"] = forget
        splits[f"retain{100 - pct}"] = plain([r for rows in per_author[:-k] for r in rows])
    # TOFU's retain_perturbed: the first authors, as many as the largest forget split.
    splits["retain_perturbed"] = [r for rows in per_author[:largest] for r in rows]

    classics = [(f"Who wrote '{t}'?", n) for t, n in zip(pools["book1"][-10:], pools["name"][-10:])]
    names_pool = pools["name"][-10:]
    real_plain, real_pert = _options_rows(rng, [(q, a, names_pool) for q, a in classics])
    world = [(f"What is the capital of {c}?", cap, CAPITALS) for c, cap in zip(COUNTRIES, CAPITALS)]
    world_plain, world_pert = _options_rows(rng, world)
    splits.update(real_authors=real_plain, real_authors_perturbed=real_pert, world_facts=world_plain,
                  world_facts_perturbed=world_pert)
    return splits


def write_tofu_synthetic(out_dir: str | Path, n_authors: int = 20, seed: int = 0) -> Path:
    """Write every split as ``<split>.json`` (JSON lines, like the hub files); returns the folder."""
    out = Path(out_dir)
    for name, rows in make_facts(n_authors, seed).items():
        write_jsonl(out / f"{name}.json", rows)
    return out
