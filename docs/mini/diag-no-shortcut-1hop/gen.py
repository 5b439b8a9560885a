# One-off diagnostic data (fourth round): 1-hop lookups with no name-frequency shortcut.
import json, random, sys
names = """Ann Ben Cara Dev Eli Fay Gus Hana Ivan Jade Kim Leo Mia Noah Olga Paul Quinn Rosa Sam Tara
Uma Vic Wen Xena Yusuf Zoe Abel Bree Cruz Dana Emil Flor Gwen Hugo Iris Joel Kai Lena Milo Nina Omar Pia""".split()
rels = {"boss": ["boss", "manager", "supervisor"], "mentor": ["mentor", "tutor", "coach"],
        "friend": ["friend", "pal", "buddy"], "rival": ["rival", "opponent", "competitor"],
        "doctor": ["doctor", "physician", "medic"], "partner": ["partner", "spouse", "mate"]}
hint = '\n\nFinish your response with a final line of the form "The answer is X", where X is exactly the answer, with no explanation.'
def row(r, i):
    pool = r.sample(names, 12)
    p = pool[0]; others = pool[1:]
    R = r.choice(list(rels))
    n = r.randint(8, 10)
    has = set(); facts = []
    def add(s, rel, v):
        if (s, rel) in has or s == v: return False
        has.add((s, rel)); facts.append((s, rel, v)); return True
    # values: distinct, never p; subjects: p for 2-3 facts, else random others
    vals = r.sample(others, n)
    add(p, R, vals[0])
    k = 1
    for rel in r.sample([x for x in rels if x != R], r.randint(1, 2)):
        add(p, rel, vals[k]); k += 1
    while k < n:
        s = r.choice(others)
        rel = R if r.random() < 0.4 else r.choice(list(rels))
        if add(s, rel, vals[k]): k += 1
    ans = vals[0]
    r.shuffle(facts)
    w = r.choice(rels[R])
    q = " ".join(f"{s}'s {rel} is {v}." for s, rel, v in facts) + (f" Who is {p}'s {w}?" if r.random() < 0.5 else f" Who is the {w} of {p}?")
    return {"id": f"free-{i}", "kind": "hops", "k": 1, "steps": 1, "question": q, "prompt": q + hint,
            "response": f"{p}'s {R} is {ans}.\nThe answer is {ans}.", "answer": ans, "answer_kind": "exact"}
seed, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
with open(out, "w") as f:
    for i in range(n): f.write(json.dumps(row(r, i)) + "\n")
