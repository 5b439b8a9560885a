"""The fourth round's probes: 1-hop questions in the hops family's words, built so
that only a lookup of (person, relation) answers them. Writes probe-small.jsonl
(2 or 4 facts) and probe-one-key.jsonl (8 facts of one relation, or 6 facts of
one person). Run: python3 make_probes.py"""
import json
import random

NAMES = "Ann Ben Cara Dev Eli Fay Gus Hana Iris Jade Kai Leo Mia Nina Omar Paul Rosa Sam Tara Uma".split()
RELS = ["boss", "mentor", "friend", "rival", "doctor", "partner"]
HINT = ('\n\nFinish your response with a final line of the form "The answer is X", '
        "where X is exactly the answer, with no explanation.")


def row(kind, i, facts, p, r, a):
    q = " ".join(f"{x}'s {y} is {z}." for x, y, z in facts) + f" Who is {p}'s {r}?"
    return {"id": f"{kind}-{i}", "kind": kind, "k": 1, "steps": 1, "question": q, "prompt": q + HINT,
            "answer": a, "answer_kind": "exact", "response": f"{p}'s {r} is {a}.\nThe answer is {a}."}


def small():
    random.seed(7)
    rows = []
    for kind in ["samerel2", "sameperson2", "mixed4"]:
        for i in range(25):
            p, q, a, b, c, d = random.sample(NAMES, 6)
            r, s = random.sample(RELS, 2)
            if kind == "samerel2":
                facts = [(p, r, a), (q, r, b)]
            elif kind == "sameperson2":
                facts = [(p, r, a), (p, s, b)]
            else:
                facts = [(p, r, a), (p, s, b), (q, r, c), (q, s, d)]
            random.shuffle(facts)
            rows.append(row(kind, i, facts, p, r, a))
    return rows


def one_key():
    random.seed(8)
    rows = []
    for kind in ["samerel8", "sameperson6"]:
        for i in range(40):
            if kind == "samerel8":
                ps = random.sample(NAMES, 16)
                r = random.choice(RELS)
                facts = [(ps[j], r, ps[8 + j]) for j in range(8)]
            else:
                ps = random.sample(NAMES, 7)
                rr = RELS[:]
                random.shuffle(rr)
                facts = [(ps[0], rr[j], ps[1 + j]) for j in range(6)]
            p, r, a = random.choice(facts)
            random.shuffle(facts)
            rows.append(row(kind, i, facts, p, r, a))
    return rows


for name, rows in [("probe-small.jsonl", small()), ("probe-one-key.jsonl", one_key())]:
    with open(name, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
