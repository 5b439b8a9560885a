#!/usr/bin/env bash
# The bullet pilots (2026-12-07, fourth round): the second round's 20,000 training rows and 200
# validation rows (DATA = that run's data/, seeds 1001 and 2002) with one change, made by this
# one-off transform: every response line but the last starts with "- ", so each person a step
# names is the " Name" token (with its leading space) that the facts use, not "Name".
set -euo pipefail
DATA=${DATA:?the run's data/ folder}
mkdir -p data
python3 - "$DATA" <<'PY'
import json, sys
for name in ["train", "val"]:
    with open(f"{sys.argv[1]}/{name}.jsonl") as f, open(f"data/{name}.jsonl", "w") as o:
        for line in f:
            row = json.loads(line)
            lines = row["response"].split("\n")
            row["response"] = "\n".join(["- " + x for x in lines[:-1]] + [lines[-1]])
            o.write(json.dumps(row) + "\n")
PY
# The init of the 20,000-row 2-layer pilot (the run's tokenizer, seed 1), then for LR in 3e-4 5e-4:
codeplan model init --out init.gguf --layers 2 --embd 128 --heads 4 --ff 384 --ctx 384 --seed 1 --tokenizer ../tokenizer
for LR in 3e-4 5e-4; do
  mkdir -p lr$LR
  codeplan finetune init.gguf --full --data data/train.jsonl --out lr$LR/model.gguf --mode direct --format trained \
    --epochs 1 --lr $LR --warmup 0.05 --weight-decay 0.1 --ctx 384 --batch 384 --seed 42 --threads 1 --snapshots 4
  codeplan eval lr$LR/model.gguf --bench data/val.jsonl --modes direct --format trained --temperature 0 \
    --max-plan-tokens 256 --max-tokens 128 --parallel 32 --ctx 24576 --threads 1 --out lr$LR/eval
  codeplan compare --input data/val.jsonl --output lr$LR --train data/train.jsonl --tokenizer ../tokenizer direct=lr$LR/eval
done
