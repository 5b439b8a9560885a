#!/usr/bin/env bash
# The CodePlan effect, measured end to end on a CPU (issues 12 and 23).
#
# Fresh synthetic rows (hops and branch problems by default), a byte-level
# BPE tokenizer trained on the training split, one fresh model; four copies
# of it trained from that same init on the same rows, in the same order,
# with the same schedule and seed, one per arm: direct, nlplan, codeplan and
# control (the code plan with its names and relations masked); each is then
# evaluated in its own mode on held-out rows, and `codeplan compare` pairs
# them item by item (paired bootstrap, exact McNemar; code plan vs direct,
# vs NL plan and vs control are pre-registered), with learning curves, plan
# statistics and a prompt-blind baseline.
#
#   scripts/mini-replication.sh [OUT_DIR]        (or: make mini)
#
# Before the four arms, a pilot (PILOT_ROWS > 0) trains a direct model on
# that many training rows and evaluates it on the validation rows; the run
# stops (exit 3) unless its accuracy at k=1 reaches PILOT_GATE.
#
# Everything goes under OUT_DIR (default mini-run): data/, tokenizer/,
# init.gguf, models/, eval-<split>-<arm>/, report-<split>/, recipe.env,
# times.tsv, run.log (progress) and logs/ (one per stage). A rerun skips
# finished stages (and eval resumes mid-way), so an interrupted run is
# finished by running the same command again. The settings are recorded in
# recipe.env; a rerun with other settings is refused instead of mixing two
# recipes in one folder.
#
# Every setting is an environment variable (defaults below). EVAL_SPLIT=val
# evaluates on the validation rows instead of the test rows: use it, and
# only it, to choose model size, data size, learning rate and difficulty.
# With EVAL_SPLIT=val the test rows are not even generated.
set -euo pipefail

OUT=${1:-${MINI_OUT:-mini-run}}
CODEPLAN=${CODEPLAN:-./codeplan}

# Task: families and step counts, rows per (family, k) per split, seeds.
KINDS=${KINDS:-hops,branch}
STEPS=${STEPS:-1-4}
N_TRAIN=${N_TRAIN:-2500}
N_VAL=${N_VAL:-25}
N_TEST=${N_TEST:-100}
SEED_TRAIN=${SEED_TRAIN:-1001}
SEED_VAL=${SEED_VAL:-2002}
SEED_TEST=${SEED_TEST:-3003}
EVAL_SPLIT=${EVAL_SPLIT:-test}
# Tokenizer: BPE vocabulary size (0 = the byte-level vocabulary of model init).
VOCAB=${VOCAB:-1024}
# Model shape and initialisation. In the pilots two layers began to look facts
# up within 1,000 steps and four had not after 1,250, at half the speed
# (docs/mini/README.md).
LAYERS=${LAYERS:-2}
EMBD=${EMBD:-128}
HEADS=${HEADS:-4}
FF=${FF:-384}
CTX=${CTX:-384}
INIT_SEED=${INIT_SEED:-1}
# Training schedule (the same for every arm). One epoch: rows are free.
EPOCHS=${EPOCHS:-1}
# 3e-4 was the best of 3e-3, 1e-3, 5e-4 and 3e-4 in the direct pilots; at
# 3e-3 the models never read the prompt.
LR=${LR:-3e-4}
WARMUP=${WARMUP:-0.05}
WEIGHT_DECAY=${WEIGHT_DECAY:-0.1}
# Tokens per optimizer step (about three rows): many small steps.
BATCH=${BATCH:-384}
TRAIN_SEED=${TRAIN_SEED:-42}
# Learning curves: models saved after each 1/SNAPSHOTS of training and
# evaluated on the validation rows (0 = none).
SNAPSHOTS=${SNAPSHOTS:-4}
# The pilot: a direct model on PILOT_ROWS training rows (every n-th row, so
# every family and k), judged on validation; the run goes on only if its
# accuracy at k=1 is at least PILOT_GATE (0 rows = no pilot). A pilot on
# every training row is the direct arm, trained once.
PILOT_ROWS=${PILOT_ROWS:-0}
PILOT_GATE=${PILOT_GATE:-0.7}
# Decoding.
MAX_PLAN_TOKENS=${MAX_PLAN_TOKENS:-256}
MAX_TOKENS=${MAX_TOKENS:-128}
PARALLEL=${PARALLEL:-32}
THREADS=${THREADS:-1}
# Trainings and evals run this many at a time. They are independent (same
# init, own output), so running them side by side changes no result, only
# the wall time. One thread each: on a busy machine ggml's worker threads
# wait on each other, and 2 threads trained at half the speed of 1 in our
# measurement.
JOBS=${JOBS:-4}
MODES=${MODES:-direct nlplan codeplan control}
# The plan extractor (section 2b below): 1 trains and judges it, 0 skips it.
EXTRACTOR=${EXTRACTOR:-0}
EXTRACTOR_EVERY=${EXTRACTOR_EVERY:-2}
EXTRACTOR_CTX=${EXTRACTOR_CTX:-1024}
EXTRACTOR_EPOCHS=${EXTRACTOR_EPOCHS:-$EPOCHS}
# With these defaults and the rest of the recipe unchanged, EXTRACTOR=1
# trains the extractor shipped in examples/mini (every 2nd row, lr 5e-4: the
# best of 1e-3, 5e-4 and 3e-4 on validation, docs/mini/extractor).
EXTRACTOR_LR=${EXTRACTOR_LR:-5e-4}

case "$EVAL_SPLIT" in val | test) ;; *)
  echo "mini-replication: EVAL_SPLIT=$EVAL_SPLIT: want val or test" >&2
  exit 2
  ;;
esac

mkdir -p "$OUT"/data "$OUT"/models "$OUT"/logs
LOG="$OUT/run.log"
TIMES="$OUT/times.tsv"

# The recipe: what makes the results. EVAL_SPLIT, THREADS, PARALLEL, JOBS and
# PILOT_GATE are left out: they choose what is evaluated and how fast, or
# whether to go on, not the models.
recipe() {
  cat <<EOF
KINDS=$KINDS
STEPS=$STEPS
N_TRAIN=$N_TRAIN
N_VAL=$N_VAL
N_TEST=$N_TEST
VOCAB=$VOCAB
SEED_TRAIN=$SEED_TRAIN
SEED_VAL=$SEED_VAL
SEED_TEST=$SEED_TEST
LAYERS=$LAYERS
EMBD=$EMBD
HEADS=$HEADS
FF=$FF
CTX=$CTX
INIT_SEED=$INIT_SEED
EPOCHS=$EPOCHS
LR=$LR
WARMUP=$WARMUP
WEIGHT_DECAY=$WEIGHT_DECAY
BATCH=$BATCH
TRAIN_SEED=$TRAIN_SEED
SNAPSHOTS=$SNAPSHOTS
PILOT_ROWS=$PILOT_ROWS
MAX_PLAN_TOKENS=$MAX_PLAN_TOKENS
MAX_TOKENS=$MAX_TOKENS
EOF
}
# check_recipe FILE FUNC: records FUNC's settings in FILE, or refuses a run
# whose settings differ from the ones recorded there.
check_recipe() {
  local file=$1 fn=$2
  if [ -f "$file" ]; then
    if ! diff <("$fn") "$file" >/dev/null; then
      echo "mini-replication: $OUT was made with other settings:" >&2
      diff <("$fn") "$file" >&2 || true
      echo "use another folder, or the settings in $file" >&2
      exit 2
    fi
  else
    "$fn" >"$file"
  fi
}
check_recipe "$OUT/recipe.env" recipe

say() { echo "[mini $(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# stage NAME CMD...: runs CMD unless NAME finished before, its output going
# to logs/NAME.log; records its wall time. The marker is written only after
# CMD succeeds; a failure returns 1 (and stops the script: set -e).
stage() {
  local name=$1
  shift
  if [ -f "$OUT/.done-$name" ]; then
    say "skip $name (done)"
    return 0
  fi
  say "start $name (log: $OUT/logs/$name.log)"
  local t0=$SECONDS
  "$@" >"$OUT/logs/$name.log" 2>&1 || {
    say "FAILED $name (see $OUT/logs/$name.log)"
    tail -n 20 "$OUT/logs/$name.log" >&2
    return 1
  }
  local dt=$((SECONDS - t0))
  printf '%s\t%d\n' "$name" "$dt" >>"$TIMES"
  touch "$OUT/.done-$name"
  say "done $name in ${dt}s"
}

cp=("$CODEPLAN" --log-format console)

# 1. Data: three seeds; each later split excludes the prompts of the earlier
# ones, so no prompt is shared.
stage data-train "${cp[@]}" synth --kinds "$KINDS" --steps "$STEPS" --n "$N_TRAIN" --seed "$SEED_TRAIN" \
  --out "$OUT/data/train.jsonl"
stage data-val "${cp[@]}" synth --kinds "$KINDS" --steps "$STEPS" --n "$N_VAL" --seed "$SEED_VAL" \
  --exclude "$OUT/data/train.jsonl" --out "$OUT/data/val.jsonl"
if [ "$EVAL_SPLIT" = test ]; then
  stage data-test "${cp[@]}" synth --kinds "$KINDS" --steps "$STEPS" --n "$N_TEST" --seed "$SEED_TEST" \
    --exclude "$OUT/data/train.jsonl" --exclude "$OUT/data/val.jsonl" --out "$OUT/data/test.jsonl"
fi

# 2. The tokenizer, trained on the training split only, and one init for
# all arms.
tok=()
if [ "$VOCAB" != 0 ]; then
  stage tokenizer "${cp[@]}" tokenizer train --vocab "$VOCAB" --input "$OUT/data/train.jsonl" --synth-words \
    --output "$OUT/tokenizer"
  tok=(--tokenizer "$OUT/tokenizer")
fi
stage init "${cp[@]}" model init --out "$OUT/init.gguf" --force --layers "$LAYERS" --embd "$EMBD" --heads "$HEADS" \
  --ff "$FF" --ctx "$CTX" --seed "$INIT_SEED" "${tok[@]}"

# 2b. Section 4 of the issue: a plan extractor trained with the same recipe
# from the same shape of init, except for its learning rate (EXTRACTOR_LR)
# and a longer context (the paper's extraction prompt holds the row's prompt
# and response). Its rows are every EXTRACTOR_EVERY-th
# training row (so every family and k), shown as `codeplan extract` shows
# them; its target is the row's code plan. It trains beside the three models
# and is judged on the held-out split like them: how many plans pass
# extract's filters, and how many equal the reference plan exactly
# (extractor-<split>.txt and .json).
if [ "$EXTRACTOR" = 1 ]; then
  extractor_recipe() {
    cat <<EOF
EXTRACTOR_EVERY=$EXTRACTOR_EVERY
EXTRACTOR_CTX=$EXTRACTOR_CTX
EXTRACTOR_EPOCHS=$EXTRACTOR_EPOCHS
EXTRACTOR_LR=$EXTRACTOR_LR
EOF
  }
  check_recipe "$OUT/extractor.env" extractor_recipe
  stage data-extractor awk -v n="$EXTRACTOR_EVERY" -v out="$OUT/data/extractor-train.jsonl" \
    'NR % n == 1 { print > out }' "$OUT/data/train.jsonl"
  stage init-extractor "${cp[@]}" model init --out "$OUT/init-extractor.gguf" --force --layers "$LAYERS" --embd "$EMBD" \
    --heads "$HEADS" --ff "$FF" --ctx "$EXTRACTOR_CTX" --seed "$INIT_SEED" "${tok[@]}"
fi
train_extractor() {
  local resume=()
  if [ -f "$OUT/models/extractor.ckpt.gguf" ]; then
    resume=(--resume)
  fi
  "${cp[@]}" finetune "$OUT/init-extractor.gguf" --full --task extract --template paper \
    --data "$OUT/data/extractor-train.jsonl" --out "$OUT/models/extractor.gguf" \
    --epochs "$EXTRACTOR_EPOCHS" --lr "$EXTRACTOR_LR" --warmup "$WARMUP" --weight-decay "$WEIGHT_DECAY" \
    --ctx "$EXTRACTOR_CTX" --batch "$EXTRACTOR_CTX" --seed "$TRAIN_SEED" --threads "$THREADS" \
    --checkpoint-every 50 "${resume[@]}"
}
# Judged afresh when the stage runs: the summary covers every row.
eval_extractor() {
  rm -rf "$OUT/eval-$EVAL_SPLIT-extractor"
  "${cp[@]}" extract "$OUT/models/extractor.gguf" --input "$OUT/data/$EVAL_SPLIT.jsonl" --template paper \
    --reference-field plan --max-plan-tokens "$MAX_PLAN_TOKENS" --parallel "$PARALLEL" \
    --ctx $((PARALLEL * EXTRACTOR_CTX)) --threads "$THREADS" \
    --output "$OUT/eval-$EVAL_SPLIT-extractor/plans.jsonl" --summary "$OUT/extractor-$EVAL_SPLIT.json" \
    >"$OUT/extractor-$EVAL_SPLIT.txt"
}

# 3. The arms, trained from that init: same rows, order, schedule and seed.
# The control arm is a code-plan model whose plans are the masked skeletons
# (control_plan), so it differs from codeplan only in the plans' content.
# arm_mode ARM: the mode an arm trains and is evaluated in.
arm_mode() {
  case "$1" in control) echo codeplan ;; pilot) echo direct ;; *) echo "$1" ;; esac
}
train() {
  local mode=$1 resume=() field=() snaps=() data="$OUT/data/train.jsonl"
  if [ "$mode" = extractor ]; then
    train_extractor
    return
  fi
  if [ -f "$OUT/models/$mode.ckpt.gguf" ]; then
    resume=(--resume)
  fi
  if [ "$mode" = control ]; then
    field=(--plan-field control_plan)
  fi
  if [ "$mode" = pilot ]; then
    data="$OUT/data/pilot-train.jsonl"
  elif [ "$SNAPSHOTS" -gt 1 ]; then
    snaps=(--snapshots "$SNAPSHOTS")
  fi
  "${cp[@]}" finetune "$OUT/init.gguf" --full --data "$data" --out "$OUT/models/$mode.gguf" \
    --mode "$(arm_mode "$mode")" "${field[@]}" --format trained --epochs "$EPOCHS" --lr "$LR" --warmup "$WARMUP" \
    --weight-decay "$WEIGHT_DECAY" --ctx "$CTX" --batch "$BATCH" --seed "$TRAIN_SEED" --threads "$THREADS" \
    --checkpoint-every 50 "${snaps[@]}" "${resume[@]}"
}
# each NAME FUNC ITEM...: runs stage NAME-ITEM (FUNC ITEM) for every item,
# JOBS at a time, and fails if any failed.
each() {
  local name=$1 fn=$2 pids=() failed=0
  shift 2
  for mode in "$@"; do
    stage "$name-$mode" "$fn" "$mode" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do
    wait "$p" || failed=1
  done
  if [ $failed -ne 0 ]; then
    say "FAILED: a $name stage failed (see $LOG)"
    exit 1
  fi
}

# 4. Evaluation of a model (MODEL, default ARM) in its arm's mode on a split.
# Each sequence gets room for a training row's length plus both token limits,
# so that a model that runs on is cut by a limit (a wrong answer), never by
# the context (which eval reports as could-not-run).
# evaluate_on SPLIT ARM [MODEL]
evaluate_on() {
  local split=$1 arm=$2 model=${3:-$2}
  "${cp[@]}" eval "$OUT/models/$model.gguf" --bench "$OUT/data/$split.jsonl" --modes "$(arm_mode "$arm")" \
    --format trained --temperature 0 --max-plan-tokens "$MAX_PLAN_TOKENS" --max-tokens "$MAX_TOKENS" \
    --parallel "$PARALLEL" --ctx $((PARALLEL * (CTX + MAX_PLAN_TOKENS + MAX_TOKENS))) --threads "$THREADS" --out "$OUT/eval-$split-$model"
}
evaluate() { evaluate_on "$EVAL_SPLIT" "$1"; }

# 3a. The pilot gate: a short direct run, judged on validation at k=1.
if [ "$PILOT_ROWS" -gt 0 ]; then
  stage data-pilot awk -v n="$PILOT_ROWS" -v out="$OUT/data/pilot-train.jsonl" \
    'NR == FNR { total++; next } (FNR - 1) % int(total / n > 1 ? total / n : 1) == 0 && kept < n { print > out; kept++ }' \
    "$OUT/data/train.jsonl" "$OUT/data/train.jsonl"
  if [ "$PILOT_ROWS" -ge "$(wc -l <"$OUT/data/train.jsonl")" ]; then
    # A pilot on every training row would be the direct arm itself (same
    # rows, order, schedule and seed): train that arm once, snapshots
    # included, and judge it as the pilot.
    say "the pilot covers every training row: it is the direct arm"
    stage train-direct train direct
    stage train-pilot ln -f "$OUT/models/direct.gguf" "$OUT/models/pilot.gguf"
  else
    stage train-pilot train pilot
  fi
  stage eval-val-pilot evaluate_on val pilot
  read -r right all < <(awk '/"steps":1,/ { n++; if (/"correct":true/) c++ } END { print c + 0, n + 0 }' \
    "$OUT/eval-val-pilot/results.jsonl")
  say "pilot: direct on $PILOT_ROWS rows: $right of $all validation items right at k=1 (gate $PILOT_GATE)"
  if ! awk -v r="$right" -v n="$all" -v g="$PILOT_GATE" 'BEGIN { exit !(n > 0 && r / n >= g) }'; then
    say "pilot below the gate: stopping before the arms (more rows, another learning rate or a bigger model first)"
    exit 3
  fi
fi

trainees=($MODES)
if [ "$EXTRACTOR" = 1 ]; then
  trainees+=(extractor)
fi
each train train "${trainees[@]}"

each "eval-$EVAL_SPLIT" evaluate $MODES
if [ "$EXTRACTOR" = 1 ]; then
  stage "eval-$EVAL_SPLIT-extractor" eval_extractor
  tee -a "$LOG" <"$OUT/extractor-$EVAL_SPLIT.txt"
fi

# 4b. Learning curves: the snapshots on the validation split (and the final
# models too when the main split is test).
curve_args=()
if [ "$SNAPSHOTS" -gt 1 ]; then
  points=()
  for mode in $MODES; do
    for ((i = 1; i < SNAPSHOTS; i++)); do
      pct=$((100 * i / SNAPSHOTS))
      points+=("$mode.at$pct")
      curve_args+=("$mode@$pct=$OUT/eval-val-$mode.at$pct")
    done
    if [ "$EVAL_SPLIT" = test ]; then
      points+=("$mode")
      curve_args+=("$mode@100=$OUT/eval-val-$mode")
    fi
  done
  curve_eval() { evaluate_on val "${1%.at*}" "$1"; }
  each eval-val curve_eval "${points[@]}"
fi

# 5. The comparison (always rebuilt: it is cheap and reads every result).
dirs=() arms=()
for mode in $MODES; do
  arms+=("$mode=$OUT/eval-$EVAL_SPLIT-$mode")
  if [ "$mode" != control ]; then
    dirs+=("$OUT/eval-$EVAL_SPLIT-$mode")
  fi
done
base=()
if [ "$VOCAB" != 0 ]; then
  base=(--train "$OUT/data/train.jsonl" --tokenizer "$OUT/tokenizer")
fi
say "report $OUT/report-$EVAL_SPLIT"
"${cp[@]}" report --out "$OUT/report-$EVAL_SPLIT" \
  --title "CodePlan miniature ($EVAL_SPLIT split): accuracy by steps" "${dirs[@]}" | tee -a "$LOG"
"${cp[@]}" compare --input "$OUT/data/$EVAL_SPLIT.jsonl" --output "$OUT/report-$EVAL_SPLIT" "${base[@]}" \
  --title "CodePlan miniature ($EVAL_SPLIT split): paired comparison" "${arms[@]}" "${curve_args[@]}" | tee -a "$LOG"
say "finished; stage times in $TIMES"
