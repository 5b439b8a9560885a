#!/usr/bin/env bash
# gpu-check.sh: build and measure everything GPU-related in one run, on a
# machine with an NVIDIA GPU, nvcc, CMake and no Go (the layout `make
# gpu-bundle` writes: bin/codeplan, ollama/ (CMake + ggml sources), Makefile,
# scripts/, tokenizers/). Also runs from a repository checkout.
#
#   scripts/gpu-check.sh OUTDIR             the real run (about 9 minutes at most)
#   scripts/gpu-check.sh --dry-run OUTDIR   no GPU: every step that needs none, on the CPU
#
# Steps (each with its own timeout; the timeouts add up to at most 540 s):
#   1 build      the CUDA backend for this GPU's architecture only, all cores
#   2 info       codeplan info --system --gpu: the GPU must be listed
#   3 model      an 8B-shaped (llama3-8b) Q4_0 random model on local disk
#   4 bench      codeplan bench --gpu at parallel 1, 8, 32, 64 (prompt 512, generate 128)
#   5 extract    codeplan extract --gpu over 512 generated rows, default (paper's) template, plans <= 64 tokens
#   6 chat       one codeplan chat --gpu turn
#   7 finetune   20 LoRA steps on the 1b shape, then 5 on the 8B shape (--gpu)
# Each step's time, tokens/s, peak GPU memory (nvidia-smi) and error go to
# OUTDIR/report.json and OUTDIR/report.md, and every step's output to
# OUTDIR/logs.tar.gz (three files: the device returns at most eight).
# A failed step does not stop the run. Exit status: 0 when every step that ran
# passed, 1 otherwise, 2 on bad usage.
set -uo pipefail

dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 [--dry-run] OUTDIR" >&2
  exit 2
fi
out="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CODEPLAN_BIN:-$root/bin/codeplan}"
work="${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/codeplan-gpu-check}"
logs="$work/logs"
rm -rf "$logs"
mkdir -p "$out" "$work" "$logs" || exit 2
out="$(cd "$out" && pwd)"
threads="$(nproc)"
if [ ! -x "$bin" ]; then
  echo "gpu-check: no codeplan binary at $bin (make gpu-bundle, or make build)" >&2
  exit 2
fi

# Timeouts in seconds. Their sum (plus 2 s of kill grace for each of the 9
# steps) stays under 540 s, so the whole run fits a 10-minute device call with the start.
T_BUNDLE=10 T_BUILD=270 T_INFO=10 T_MODEL=35 T_BENCH=55 T_EXTRACT=45 T_CHAT=15 T_FT1B=35 T_FT8B=40
BUDGET=540
# What the device run can take at most: every timeout plus its kill grace.
total_limit=$((T_BUNDLE + T_BUILD + T_INFO + T_MODEL + T_BENCH + T_EXTRACT + T_CHAT + T_FT1B + T_FT8B + 9 * 2))
if [ $total_limit -gt $BUDGET ]; then
  echo "gpu-check: the step timeouts add up to $total_limit s, over the $BUDGET s budget" >&2
  exit 2
fi
# The dry run does small CPU work instead; a shared 2-core CI box gets four
# times the time (the 540 s budget is the device's, not the dry run's).
if [ $dry -eq 1 ]; then
  for v in T_BUNDLE T_BUILD T_INFO T_MODEL T_BENCH T_EXTRACT T_CHAT T_FT1B T_FT8B; do
    eval "$v=\$((\$$v * 4))"
  done
fi
# The shape the dry run writes: 1b (0.7 GB, the writer at a real size) unless
# GPU_CHECK_DRY_SHAPE says otherwise (the Go test uses toy: its 1b test
# already writes, loads and decodes that shape).
dry_shape="${GPU_CHECK_DRY_SHAPE:-1b}"

# The module source for CMake: the bundle's copy, else the one Go pinned.
ollama_dir=""
if [ -f "$root/ollama/CMakeLists.txt" ]; then
  ollama_dir="$root/ollama"
fi

# The Llama-3 tokenizer, when the bundle or the checkout carries it.
tok=""
if [ -f "$root/tokenizers/llama3/models/tokenizer.json.gz" ]; then
  tok="$work/tokenizers/llama3"
  mkdir -p "$tok/models"
  for f in tokenizer.json tokenizer_config.json; do
    gzip -dc "$root/tokenizers/llama3/models/$f.gz" >"$tok/models/$f"
  done
elif [ -f "$root/.cache/tokenizers/llama3/models/tokenizer.json" ]; then
  tok="$root/.cache/tokenizers/llama3"
fi
tokflag=()
[ -n "$tok" ] && tokflag=(--tokenizer "$tok")

have_gpu=0
if [ $dry -eq 0 ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  have_gpu=1
fi

# ---- report -------------------------------------------------------------
names=() statuses=() secs=() timeouts=() tps=() peaks=() errors=() notes=()

json_str() { # JSON string literal of $1
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\t'/\\t}"; s="${s//$'\r'/}"; s="${s//$'\n'/\\n}"
  s="$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')"
  printf '"%s"' "$s"
}
json_num() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'null'; fi; }

record() { # name status seconds timeout tok/s peak error note
  names+=("$1"); statuses+=("$2"); secs+=("$3"); timeouts+=("$4"); tps+=("$5"); peaks+=("$6"); errors+=("$7"); notes+=("$8")
  printf '%-12s %-8s %6ss  tok/s %-10s peak GPU MiB %-7s %s%s\n' "$1" "$2" "$3" "${5:--}" "${6:--}" "$7" "${8:+ ($8)}" >&2
}

skip() { # name timeout reason
  record "$1" skipped 0 "$2" "" "" "" "$3"
}

# run_step NAME TIMEOUT NOTE CMD...: runs CMD under its timeout with its output
# in OUTDIR/NAME.log, sampling GPU memory meanwhile. Sets step_rc, step_log.
run_step() {
  local name="$1" limit="$2" note="$3"; shift 3
  step_log="$logs/$name.log"
  local smi="$work/$name.smi" sampler=""
  : >"$smi"
  if [ $have_gpu -eq 1 ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 >"$smi" 2>/dev/null &
    sampler=$!
  fi
  local start end pid watchdog fired="$work/$name.timedout"
  rm -f "$fired"
  start=$(date +%s.%N)
  # Job control gives the step and the watchdog their own process groups,
  # so a timeout ends every process the step started (functions and pipes
  # included, which timeout(1) cannot run).
  set -m
  ( "$@" ) >"$step_log" 2>&1 &
  pid=$!
  ( sleep "$limit"; touch "$fired"; kill -TERM -- -"$pid" 2>/dev/null; sleep 2; kill -KILL -- -"$pid" 2>/dev/null ) >/dev/null 2>&1 &
  watchdog=$!
  set +m
  wait "$pid"
  step_rc=$?
  kill -- -"$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
  [ -f "$fired" ] && step_rc=124
  end=$(date +%s.%N)
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; fi
  step_secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  step_peak=$(sort -n "$smi" 2>/dev/null | tail -1 | tr -d ' ')
  local status=ok err=""
  if [ $step_rc -eq 124 ] || [ $step_rc -eq 137 ]; then
    status=timeout err="no result within its ${limit} s timeout"
  elif [ $step_rc -ne 0 ]; then
    status=failed
    err="exit $step_rc: $(grep -v '^\s*$' "$step_log" | grep -iE 'error|fail|abort|fatal|panic|no such|not found|cannot' | tail -2 | cut -c1-300 | tr '\n' ' ')"
    [ "$err" = "exit $step_rc: " ] && err="exit $step_rc: $(tail -2 "$step_log" | cut -c1-300 | tr '\n' ' ')"
  fi
  step_status=$status
  step_err=$err
  step_note=$note
  step_limit=$limit
}

finish_step() { # name tok/s
  record "$1" "$step_status" "$step_secs" "$step_limit" "$2" "$step_peak" "$step_err" "$step_note"
}

gpuflag=(--gpu --backend-dir "$root/lib/codeplan")
[ $dry -eq 1 ] && gpuflag=()

# ---- 0: the bundle ------------------------------------------------------
bundle_check() {
  local bad=0
  "$bin" --help >/dev/null || bad=1
  if [ -n "$ollama_dir" ]; then
    for f in CMakeLists.txt ml/backend/ggml/ggml/src/CMakeLists.txt ml/backend/ggml/ggml/src/ggml-cuda/CMakeLists.txt \
             ml/backend/ggml/ggml/include/ggml.h ml/backend/ggml/ggml/cmake/common.cmake; do
      [ -f "$ollama_dir/$f" ] || { echo "missing $ollama_dir/$f"; bad=1; }
    done
    extra=$(find "$ollama_dir" -name '*.go' | head -3)
    [ -z "$extra" ] || { echo "Go files in the bundle: $extra"; bad=1; }
    size=$(du -sb "$root" | cut -f1)
    echo "bundle: $size bytes"
    [ "$size" -le 60000000 ] || { echo "bundle is $size bytes, over 60 MB"; bad=1; }
  else
    echo "running from a checkout: make cuda-lib finds the module with go list"
  fi
  # The cuda-lib target must not need Go when OLLAMA_DIR is given.
  if [ -n "$ollama_dir" ]; then
    make -n -C "$root" cuda-lib OLLAMA_DIR="$ollama_dir" GO=/nonexistent/go || bad=1
  fi
  return $bad
}
run_step 00-bundle $T_BUNDLE "" bundle_check
finish_step 00-bundle ""

# ---- 1: build the CUDA backend ------------------------------------------
if [ $have_gpu -eq 1 ]; then
  # One architecture, this GPU's (compute capability 9.0 -> 90).
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [ -n "$arch" ] || arch=native
  run_step 01-build $T_BUILD "CUDA_ARCHS=$arch, -j $threads" \
    make -C "$root" cuda-lib OLLAMA_DIR="${ollama_dir}" CUDA_ARCHS="$arch" CUDA_BUILD="$work/cuda-build" LIBDIR="$root/lib/codeplan"
  finish_step 01-build ""
else
  skip 01-build $T_BUILD "needs nvcc and a GPU (dry run or no nvidia-smi)"
fi

# ---- 2: info --system ----------------------------------------------------
info_check() {
  "$bin" info --system "${gpuflag[@]}" || return 1
  if [ $have_gpu -eq 1 ]; then
    "$bin" info --system "${gpuflag[@]}" | grep -qiE 'gpu|cuda' || { echo "no GPU device in codeplan info --system"; return 1; }
  fi
}
run_step 02-info $T_INFO "$([ $dry -eq 1 ] && echo 'CPU only: no --gpu in a dry run')" info_check
finish_step 02-info ""

# ---- 3: models -------------------------------------------------------------
m8="$work/llama3-8b-q4_0.gguf" m1="$work/1b-q4_0.gguf" toy="$work/toy-q8_0.gguf"
if [ $dry -eq 0 ]; then
  run_step 03-model $T_MODEL "llama3-8b Q4_0${tok:+, Llama-3 tokenizer}" \
    "$bin" model random --shape llama3-8b --type q4_0 --out "$m8" "${tokflag[@]}"
  finish_step 03-model ""
  big="$m8"
else
  # The dry run writes the 1b shape (the writer at a real size) and the
  # toy shape the CPU fallbacks below run on.
  write_dry() {
    "$bin" model random --shape "$dry_shape" --type q4_0 --out "$m1" "${tokflag[@]}" &&
      ls -l "$m1" &&
      "$bin" info "$m1" &&
      "$bin" model random --shape toy --type q8_0 --out "$toy" "${tokflag[@]}"
  }
  run_step 03-model $T_MODEL "dry run: $dry_shape Q4_0 instead of llama3-8b${tok:+, Llama-3 tokenizer}" write_dry
  finish_step 03-model ""
  rm -f "$m1"
  big="$toy"
  skip 03-model-8b $T_MODEL "4.5 GB model is only worth writing where a GPU runs it"
fi

# ---- 4: bench --------------------------------------------------------------
if [ $dry -eq 0 ]; then
  run_step 04-bench $T_BENCH "parallel 1,8,32,64; prompt 512, generate 128" \
    "$bin" bench "$big" "${gpuflag[@]}" --parallels 1,8,32,64 --pp 512 --tg 128 --json
else
  run_step 04-bench $T_BENCH "CPU fallback on the toy shape: parallel 1,4; prompt 32, generate 8" \
    "$bin" bench "$big" --parallels 1,4 --pp 32 --tg 8 --json --threads "$threads"
fi
bench_tps=$(grep -o '"tg_tok_s":[0-9.e+-]*' "$step_log" | tail -1 | cut -d: -f2)
grep "^{\"parallel\"" "$step_log" >"$work/bench.jsonl" 2>/dev/null
finish_step 04-bench "$bench_tps"

# ---- 5: extract ----------------------------------------------------------
rows=512 plan=64 par=64
[ $dry -eq 1 ] && rows=4 plan=8 par=2
corpus="$work/rows.jsonl"
for i in $(seq 1 $rows); do
  printf '{"id":"r%d","prompt":"A shop sells %d boxes of %d pencils each at %d dollars a box. Anna buys %d boxes and pays with a %d dollar note. How many pencils does she get and how much change?","response":"Anna buys %d boxes, so she gets %d x %d = %d pencils. They cost %d x %d = %d dollars, so her change is %d - %d = %d dollars."}\n' \
    $i $((i % 50 + 10)) $((i % 12 + 6)) $((i % 9 + 2)) $((i % 5 + 1)) 100 \
    $((i % 5 + 1)) $((i % 5 + 1)) $((i % 12 + 6)) $(((i % 5 + 1) * (i % 12 + 6))) \
    $((i % 5 + 1)) $((i % 9 + 2)) $(((i % 5 + 1) * (i % 9 + 2))) 100 $(((i % 5 + 1) * (i % 9 + 2))) $((100 - (i % 5 + 1) * (i % 9 + 2)))
done >"$corpus"
rm -f "$work/plans.jsonl" "$work/plans.rejects.jsonl"
run_step 05-extract $T_EXTRACT "$rows rows, --parallel $par, plans <= $plan tokens$([ $dry -eq 1 ] && echo ', CPU fallback on the toy shape')" \
  "$bin" extract "$big" "${gpuflag[@]}" --input "$corpus" --output "$work/plans.jsonl" --parallel $par \
    --ctx $((par * 1024)) --max-plan-tokens $plan --threads "$threads"
extract_tps=$(sed -n 's/.*rows\/s, \([0-9.]*\) generated tok\/s.*/\1/p' "$step_log" | tail -1)
finish_step 05-extract "$extract_tps"

# ---- 6: chat -------------------------------------------------------------
chat_tokens=64
[ $dry -eq 1 ] && chat_tokens=8
chat_turn() { printf 'What is 17 * 23 + 4?\n' | "$bin" chat "$big" "${gpuflag[@]}" --json --max-plan-tokens $chat_tokens --max-tokens $chat_tokens --threads "$threads"; }
run_step 06-chat $T_CHAT "one turn$([ $dry -eq 1 ] && echo ', CPU fallback on the toy shape')" chat_turn
finish_step 06-chat ""

# ---- 7: finetune ---------------------------------------------------------
# Each row is longer than --batch/2 tokens, so every row is one optimizer
# step: N rows, one epoch = N steps.
ft_rows() { # N FILE
  for i in $(seq 1 "$1"); do
    printf '{"id":"f%d","prompt":"Tom has %d marbles and wins %d more in each of %d games, then gives away a third of them. How many marbles does Tom keep at the end, and how many did he give away? Explain each step of the calculation carefully.","plan":"start = %d\\nwon = %d * %d\\ntotal = add(start, won)\\ngiven = divide(total, 3)\\nkept = subtract(total, given)\\nreturn kept, given","response":"Tom starts with %d marbles. He wins %d marbles in each of %d games, which is %d marbles, so he has %d marbles. A third of them is %d, so he keeps %d marbles and gives away %d. The answer is %d kept and %d given away."}\n' \
      "$i" $((i * 3)) $((i + 2)) 3 $((i * 3)) $((i + 2)) 3 $((i * 3)) $((i + 2)) 3 $((3 * (i + 2))) $((i * 3 + 3 * (i + 2))) $(((i * 3 + 3 * (i + 2)) / 3)) $((i * 3 + 3 * (i + 2) - (i * 3 + 3 * (i + 2)) / 3)) $(((i * 3 + 3 * (i + 2)) / 3)) $((i * 3 + 3 * (i + 2) - (i * 3 + 3 * (i + 2)) / 3)) $(((i * 3 + 3 * (i + 2)) / 3))
  done >"$2"
}
ft_tps() { # log.csv -> mean tokens_per_s over the steps
  awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="tokens_per_s") c=i; next} c&&$c!=""{s+=$c; n++} END{if(n) printf "%.1f", s/n}' "$1" 2>/dev/null
}
ft_steps() { awk 'END{print NR-1}' "$1" 2>/dev/null; }
finetune_run() { # MODEL ROWS OUT [write args...]
  local model="$1" n="$2" o="$3"; shift 3
  if [ $# -gt 0 ]; then "$bin" model random "$@" --out "$model" "${tokflag[@]}" || return 1; fi
  ft_rows "$n" "$work/ft-$n.jsonl"
  rm -f "$o" "${o%.gguf}".*
  "$bin" finetune "$model" "${gpuflag[@]}" --data "$work/ft-$n.jsonl" --out "$o" --epochs 1 --lora-rank 16 \
    --ctx 256 --batch 256 --val-split 0 --threads "$threads" || return 1
  echo "steps: $(ft_steps "${o%.gguf}.log.csv")"
}
if [ $dry -eq 0 ]; then
  run_step 07-finetune-1b $T_FT1B "20 steps, 1b shape (written first), LoRA rank 16" \
    finetune_run "$m1" 20 "$work/ft-1b.gguf" --shape 1b --type q4_0
  finish_step 07-finetune-1b "$(ft_tps "$work/ft-1b.log.csv")"
  run_step 07-finetune-8b $T_FT8B "5 steps, llama3-8b shape, LoRA rank 16" \
    finetune_run "$m8" 5 "$work/ft-8b.gguf"
  finish_step 07-finetune-8b "$(ft_tps "$work/ft-8b.log.csv")"
else
  run_step 07-finetune-1b $T_FT1B "CPU fallback: 2 steps on the toy shape instead of 20 on 1b" \
    finetune_run "$toy" 2 "$work/ft-toy.gguf"
  finish_step 07-finetune-1b "$(ft_tps "$work/ft-toy.log.csv")"
  skip 07-finetune-8b $T_FT8B "8B LoRA training needs the GPU (about 40 GB with F32 copies of the base)"
fi

# ==== 8: PEFT / transformers (issue 22; owned by its own script) =============
# Exports a small trained model + adapter (model export-hf, lora export),
# compares transformers + peft next-token logits with codeplan's
# (scripts/gpu-check-peft.py, max abs diff < 1e-3 in F32), then times 20
# LoRA steps of peft beside codeplan finetune on the 1b shape (F16). On the
# device it starts only if its timeout still fits the 600 s call; without
# torch/transformers/peft the comparison is skipped after a py_compile check.
T_PEFT=150
peft_py="$root/scripts/gpu-check-peft.py"
peft_prompt='<|im_start|>user
What is 2+3?<|im_end|>
<|im_start|>assistant
'
peft_export() {
  local b="$work/peft-base.gguf"
  rm -rf "$work"/peft-*
  "$bin" model init --out "$b" --layers 2 --embd 128 --heads 4 --kv-heads 2 --ff 256 --ctx 512 --seed 3 --force || return 1
  ft_rows 4 "$work/peft-rows.jsonl"
  "$bin" finetune "$b" "${gpuflag[@]}" --data "$work/peft-rows.jsonl" --out "$work/peft-lora.gguf" --epochs 1 --lora-rank 8 \
    --lr 0.02 --ctx 256 --batch 256 --val-split 0 --threads "$threads" || return 1
  "$bin" model export-hf "$b" --output "$work/peft-hf" --force || return 1
  "$bin" lora export "$work/peft-lora.gguf" --base "$b" --output "$work/peft-adapter" --force || return 1
  # The strict F32 reference is the CPU's; with a GPU its logits are compared too.
  "$bin" model logits "$b" --cache-type f32 --prompt "$peft_prompt" --threads "$threads" >"$work/peft-ours-base.json" || return 1
  "$bin" model logits "$b" --cache-type f32 --lora "$work/peft-lora.gguf" --prompt "$peft_prompt" --threads "$threads" >"$work/peft-ours-lora.json" || return 1
  if [ $have_gpu -eq 1 ]; then
    "$bin" model logits "$b" "${gpuflag[@]}" --cache-type f32 --prompt "$peft_prompt" >"$work/peft-ours-gpu-base.json" || return 1
    "$bin" model logits "$b" "${gpuflag[@]}" --cache-type f32 --lora "$work/peft-lora.gguf" --prompt "$peft_prompt" >"$work/peft-ours-gpu-lora.json" || return 1
  fi
  if command -v python3 >/dev/null; then
    PYTHONPYCACHEPREFIX="$work/pycache" python3 -m py_compile "$peft_py" && echo "gpu-check-peft.py compiles"
  else
    echo "no python3 here: gpu-check-peft.py not even compiled"
  fi
}
peft_compare() {
  local gpu=()
  [ -f "$work/peft-ours-gpu-base.json" ] && gpu=(--ours-gpu-base "$work/peft-ours-gpu-base.json" --ours-gpu-lora "$work/peft-ours-gpu-lora.json")
  python3 "$peft_py" --hf "$work/peft-hf" --peft "$work/peft-adapter" --ours-base "$work/peft-ours-base.json" \
    --ours-lora "$work/peft-ours-lora.json" "${gpu[@]}" --prompt "$peft_prompt" --report "$logs/peft-compare.json"
}
peft_timing() {
  local m="$work/peft-1b.gguf"
  "$bin" model random --shape 1b --type f16 --out "$m" || return 1
  "$bin" model export-hf "$m" --output "$work/peft-1b-hf" --force || return 1
  ft_rows 20 "$work/ft-20.jsonl"
  rm -f "$work/peft-1b-lora".*
  "$bin" finetune "$m" "${gpuflag[@]}" --data "$work/ft-20.jsonl" --out "$work/peft-1b-lora.gguf" --epochs 1 --lora-rank 16 \
    --ctx 256 --batch 256 --val-split 0 --threads "$threads" || return 1
  echo "codeplan tok/s: $(ft_tps "$work/peft-1b-lora.log.csv")"
  rm -f "$m"
  python3 "$peft_py" --time-model "$work/peft-1b-hf" --time-steps 20 --rank 16 --seq 256 --report "$logs/peft-timing.json"
}
peft_field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" "$2" 2>/dev/null | head -1; }
if [ ! -f "$peft_py" ]; then
  skip 08-peft-export $T_PEFT "scripts/gpu-check-peft.py is not in this bundle"
elif [ $dry -eq 0 ] && [ $((SECONDS + T_PEFT + 30)) -gt 600 ]; then
  skip 08-peft-export $T_PEFT "no time left in the 600 s device call (started at ${SECONDS} s)"
else
  run_step 08-peft-export $T_PEFT "model init + 4 LoRA steps, export-hf, lora export, model logits" peft_export
  finish_step 08-peft-export ""
  if [ "$step_status" != ok ]; then
    skip 08-peft-compare $T_PEFT "the export step failed"
  elif ! python3 -c 'import torch, transformers, peft' >/dev/null 2>&1; then
    skip 08-peft-compare $T_PEFT "no python3 with torch, transformers and peft here (see the export log for the py_compile check)"
  else
    run_step 08-peft-compare $T_PEFT "transformers + peft vs codeplan next-token logits, F32, tol 1e-3" peft_compare
    step_note="$step_note; max abs diff base $(peft_field base_max_abs_diff "$logs/peft-compare.json"), lora $(peft_field lora_max_abs_diff "$logs/peft-compare.json"), GPU base $(peft_field gpu_base_max_abs_diff "$logs/peft-compare.json"), GPU lora $(peft_field gpu_lora_max_abs_diff "$logs/peft-compare.json"); tokenizer matches: $(peft_field tokenizer_matches "$logs/peft-compare.json")"
    finish_step 08-peft-compare ""
  fi
  if [ $dry -eq 1 ] || [ $have_gpu -eq 0 ]; then
    skip 08-peft-timing $T_PEFT "timing 20 LoRA steps of peft vs codeplan needs the GPU"
  elif ! python3 -c 'import torch, transformers, peft' >/dev/null 2>&1; then
    skip 08-peft-timing $T_PEFT "python3 has no torch/transformers/peft"
  elif [ $((SECONDS + T_PEFT)) -gt 600 ]; then
    skip 08-peft-timing $T_PEFT "no time left in the 600 s device call"
  else
    run_step 08-peft-timing $T_PEFT "1b F16, rank 16, 7 targets, seq 256, 20 steps: peft tok/s (codeplan's in the note)" peft_timing
    step_note="$step_note; codeplan finetune $(sed -n 's/^codeplan tok\/s: //p' "$step_log") tok/s"
    finish_step 08-peft-timing "$(peft_field timing_tokens_per_s "$logs/peft-timing.json")"
  fi
fi
# ==== end of the PEFT block ===================================================

# ---- report --------------------------------------------------------------
gpu_name=""
[ $have_gpu -eq 1 ] && gpu_name=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
{
  printf '{\n  "dry_run": %s,\n  "date": %s,\n  "host": %s,\n  "gpu": %s,\n  "cpus": %s,\n  "tokenizer": %s,\n  "timeout_sum_s": %s,\n  "budget_s": %s,\n  "steps": [\n' \
    "$([ $dry -eq 1 ] && echo true || echo false)" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$(uname -srm)")" \
    "$(json_str "$gpu_name")" "$threads" "$(json_str "${tok:+llama3}")" "$total_limit" "$BUDGET"
  for i in "${!names[@]}"; do
    printf '    {"step": %s, "status": %s, "seconds": %s, "timeout_s": %s, "tokens_per_s": %s, "peak_gpu_mib": %s, "error": %s, "note": %s}%s\n' \
      "$(json_str "${names[$i]}")" "$(json_str "${statuses[$i]}")" "$(json_num "${secs[$i]}")" "${timeouts[$i]}" \
      "$(json_num "${tps[$i]}")" "$(json_num "${peaks[$i]}")" "$(json_str "${errors[$i]}")" "$(json_str "${notes[$i]}")" \
      "$([ "$i" -lt $((${#names[@]} - 1)) ] && echo ,)"
  done
  printf '  ],\n  "bench": [%s]\n}\n' "$(grep -h '^{' "$work/bench.jsonl" 2>/dev/null | paste -sd, -)"
} >"$out/report.json"

{
  echo "# codeplan GPU check$([ $dry -eq 1 ] && echo ' (dry run: no GPU)')"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $threads CPUs${gpu_name:+, $gpu_name}${tok:+, Llama-3 tokenizer}."
  echo "On the device the step timeouts add up to $total_limit s (budget $BUDGET s)$([ $dry -eq 1 ] && echo "; this dry run allowed four times each")."
  echo
  echo "| step | status | seconds | tok/s | peak GPU MiB | error or note |"
  echo "|---|---|--:|--:|--:|---|"
  for i in "${!names[@]}"; do
    echo "| ${names[$i]} | ${statuses[$i]} | ${secs[$i]} | ${tps[$i]:--} | ${peaks[$i]:--} | $(echo "${errors[$i]:-${notes[$i]}}" | tr '|' '/') |"
  done
  if grep -q '^{' "$work/bench.jsonl" 2>/dev/null; then
    echo
    echo "bench (S_PP, S_TG: tokens/s over all sequences):"
    echo
    echo "| parallel | prompt tok/s | generated tok/s |"
    echo "|--:|--:|--:|"
    grep '^{' "$work/bench.jsonl" | sed -n 's/.*"parallel":\([0-9]*\).*"pp_tok_s":\([0-9.e+-]*\).*"tg_tok_s":\([0-9.e+-]*\).*/| \1 | \2 | \3 |/p'
  fi
} >"$out/report.md"

# The device returns at most 8 files: the logs travel as one archive.
tar -czf "$out/logs.tar.gz" -C "$work" logs
echo "report: $out/report.md, $out/report.json, logs in $out/logs.tar.gz" >&2
for s in "${statuses[@]}"; do
  case "$s" in failed | timeout) exit 1 ;; esac
done
exit 0
