#!/usr/bin/env bash
# gpu-check.sh: the GPU check of codeplan, sized for a borrowed GPU machine
# (NVIDIA, nvcc, CMake, no Go, no network, about 13 minutes in all). It runs
# from the layout `make gpu-bundle` writes (bin/codeplan, ollama/ with the
# CMake files and ggml sources, scripts/) or from a repository checkout.
#
#   scripts/gpu-check.sh [--budget SECONDS] OUTDIR   run on the GPU machine
#   scripts/gpu-check.sh --dry-run OUTDIR            on a CPU machine: everything that needs no GPU
#
# The device protocol (README, GPU section) is two calls of the same command
# from the repository root, the second at once after the first (the machine
# stays warm ~30 s):
#   call 1  gpu-check.sh --budget 520 OUT   (device timeout 540 s): preflight,
#           CUDA build (models written meanwhile), then checks in priority order
#   call 2  gpu-check.sh --budget 130 OUT   (device timeout 150 s): reuses the
#           build and the models, runs the checks call 1 had no time for
# State that must survive between the calls (the CUDA build, the models, the
# steps already run) lives in GPU_CHECK_STATE, default ./build/gpu-check:
# git-ignored and outside the carried gpu-bundle/, so the device keeps it.
#
# Steps, cheapest proof first. Each check has an estimate (seconds on an
# H100, a guess until measured) and a timeout; a step whose estimate does not
# fit the time left is skipped with that reason, and every skip is reported.
#   00-preflight   tools (cmake nvcc ninja g++ gcc make), nvcc --version,
#                  nvidia-smi, libcublas: a missing required tool stops the run
#   00-bundle      the bundle's layout
#   01-configure   CMake configure of the CUDA backend (the dry run configures
#                  without CUDA: the bundle's CMake files, no compiling)
#   01-build       ggml-cuda for this GPU's architecture only; reused when built
#   01-models      toy, 1b and llama3-8b random models, written during the build
#   02-info        codeplan info --system --gpu sees the GPU
#   03-ft-lora     1 LoRA step of the toy model on the GPU
#   04-ft-full     1 full-training step of a `model init` model on the GPU
#   05-bench       bench --gpu, llama3-8b Q4_0, parallel 1/8/32/64, pp 512, tg 128
#   06-extract     extract --gpu over 512 rows, plans <= 64 tokens
#   07-chat        one chat --gpu turn
#   08-ft-1b       20 LoRA steps on the 1b shape
#   09-ft-8b       5 LoRA steps on the llama3-8b shape
#   10-peft        transformers + peft against codeplan's logits (when scripts/gpu-check-peft.py exists)
# Reports: OUTDIR/report.json and report.md (every step of both calls) and
# OUTDIR/logs.tar.gz. Exit 0 when every step that ran passed, 1 otherwise, 2
# on bad usage or a missing required tool.
set -uo pipefail

dry=0 budget=520
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --budget) budget="${2:-}"; shift 2 ;;
    --budget=*) budget="${1#--budget=}"; shift ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ] || ! [[ "$budget" =~ ^[0-9]+$ ]] || [ "$budget" -lt 30 ]; then
  echo "usage: $0 [--dry-run] [--budget SECONDS (>= 30)] OUTDIR" >&2
  exit 2
fi
out="$1"
start_all=$(date +%s)
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CODEPLAN_BIN:-$root/bin/codeplan}"
state="${GPU_CHECK_STATE:-$PWD/build/gpu-check}"
[ $dry -eq 1 ] && state="${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/codeplan-gpu-check}"
work="$state/work"
logs="$state/logs"
mkdir -p "$out" "$work" "$logs" "$state/models" || exit 2
out="$(cd "$out" && pwd)"
threads="$(nproc)"
if [ ! -x "$bin" ]; then
  echo "gpu-check: no codeplan binary at $bin (make gpu-bundle, or make build)" >&2
  exit 2
fi
# One line per step run, across calls; fields separated by US (0x1f), which
# unlike a tab keeps empty fields when read back. A dry run starts afresh
# unless GPU_CHECK_CONTINUE=1 (how the test plays the second device call).
steps_file="$state/steps.txt"
sep=$'\x1f'
[ $dry -eq 1 ] && [ "${GPU_CHECK_CONTINUE:-0}" != 1 ] && : >"$steps_file"
touch "$steps_file"
call=$(( $(cut -d"$sep" -f1 "$steps_file" | sort -un | tail -1 | tr -d '\n') + 1 ))
[ "$call" -ge 1 ] 2>/dev/null || call=1

# The two device calls and their budgets (written into every report).
CALL1_TIMEOUT=540 CALL1_BUDGET=520 CALL2_TIMEOUT=150 CALL2_BUDGET=130 MACHINE_START=90
DEVICE_TOTAL=$((MACHINE_START + CALL1_TIMEOUT + CALL2_TIMEOUT))

# The module source for CMake: the bundle's copy, else the one Go pinned.
ollama_dir=""
if [ -f "$root/ollama/CMakeLists.txt" ]; then
  ollama_dir="$root/ollama"
elif command -v go >/dev/null 2>&1; then
  ollama_dir="$(cd "$root" && go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null)"
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

left() { echo $((budget - ($(date +%s) - start_all))); }

# ---- recording -------------------------------------------------------------
json_str() { # JSON string literal of $1
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\t'/ }"; s="${s//$'\r'/}"; s="${s//$'\n'/\\n}"
  s="$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')"
  printf '"%s"' "$s"
}
json_num() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'null'; fi; }

# record NAME STATUS SECONDS TIMEOUT TOK/S PEAK ERROR NOTE: one line of
# steps.txt (call number first).
record() {
  local line="$call" f
  for f in "$@"; do line+="$sep$(printf '%s' "$f" | tr '\n\037' '  ')"; done
  printf '%s\n' "$line" >>"$steps_file"
  printf 'call %s %-14s %-8s %6ss  tok/s %-10s peak GPU MiB %-7s %s%s\n' "$call" "$1" "$2" "$3" "${5:--}" "${6:--}" "$7" "${8:+ ($8)}" >&2
}
skip() { record "$1" skipped 0 "$2" "" "" "" "$3"; }
# done_before NAME: the step ran (passed or failed) in an earlier call.
done_before() { awk -F"$sep" -v n="$1" -v c="$call" '$1 < c && $2 == n && $3 != "skipped" {f=1} END {exit !f}' "$steps_file"; }

# run_step NAME TIMEOUT NOTE CMD...: runs CMD under TIMEOUT with its output in
# the step's log, sampling GPU memory meanwhile. Sets step_rc, step_log,
# step_secs, step_peak, step_status, step_err.
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
  step_status=ok step_err=""
  if [ $step_rc -eq 124 ] || [ $step_rc -eq 137 ]; then
    step_status=timeout step_err="no result within its ${limit} s timeout"
  elif [ $step_rc -ne 0 ]; then
    step_status=failed
    step_err="exit $step_rc: $(grep -v '^\s*$' "$step_log" | grep -iE 'error|fail|abort|fatal|panic|no such|not found|cannot|missing' | tail -2 | cut -c1-300 | tr '\n' ' ')"
    [ "$step_err" = "exit $step_rc: " ] && step_err="exit $step_rc: $(tail -2 "$step_log" | cut -c1-300 | tr '\n' ' ')"
  fi
  step_note=$note step_limit=$limit
}
finish_step() { record "$1" "$step_status" "$step_secs" "$step_limit" "${2:-}" "$step_peak" "$step_err" "$step_note"; }

# budgeted NAME ESTIMATE TIMEOUT NOTE CMD...: a check step under the budget.
# Skipped when it ran in an earlier call, or when its estimate does not fit
# the time left; otherwise run with a timeout of at most the time left.
budgeted() {
  local name="$1" est="$2" limit="$3" note="$4"; shift 4
  if done_before "$name"; then
    echo "call $call $name: ran in an earlier call" >&2
    return 1
  fi
  local l
  l=$(left)
  if [ $dry -eq 0 ] && [ "$est" -gt $((l - 5)) ]; then
    skip "$name" "$limit" "budget: ${l} s left of ${budget}, the step needs about ${est} s; the next call runs it"
    return 1
  fi
  [ $dry -eq 0 ] && [ "$limit" -gt $((l - 5)) ] && limit=$((l - 5))
  # the dry run does CPU work on a shared machine (CI runs test packages in
  # parallel): four times the device's timeout
  [ $dry -eq 1 ] && limit=$((limit * 4))
  run_step "$name" "$limit" "$note" "$@"
  return 0
}

# ---- 00: preflight ---------------------------------------------------------
nvcc_bin="$(command -v nvcc || true)"
[ -z "$nvcc_bin" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc
preflight() {
  local missing=() t
  for t in cmake nvcc ninja g++ gcc make nvidia-smi; do
    local p
    p="$(command -v "$t" || true)"
    [ "$t" = nvcc ] && p="$nvcc_bin"
    echo "$t: ${p:-MISSING}"
  done
  command -v cmake >/dev/null || missing+=(cmake)
  [ -n "$nvcc_bin" ] || missing+=(nvcc)
  { command -v g++ >/dev/null || command -v c++ >/dev/null; } || missing+=("g++ (or c++)")
  { command -v gcc >/dev/null || command -v cc >/dev/null; } || missing+=("gcc (or cc)")
  { command -v ninja >/dev/null || command -v make >/dev/null; } || missing+=("ninja or make (a CMake generator)")
  [ $dry -eq 1 ] || command -v nvidia-smi >/dev/null || missing+=(nvidia-smi)
  [ -n "$nvcc_bin" ] && "$nvcc_bin" --version | tail -2
  command -v nvidia-smi >/dev/null && nvidia-smi -L
  echo "libcublas: $( (ldconfig -p 2>/dev/null | grep -o '/[^ ]*libcublas\.so[^ ]*'; ls "$(dirname "${nvcc_bin:-/usr/local/cuda/bin/nvcc}")"/../lib64/libcublas.so* 2>/dev/null) | head -2 | tr '\n' ' ')"
  echo "cpus: $threads; budget: $budget s; call: $call; state: $state"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "MISSING: ${missing[*]}"
    return 1
  fi
}
if ! done_before 00-preflight || [ $dry -eq 1 ]; then
  run_step 00-preflight 20 "" preflight
  if [ $step_status != ok ] && [ $dry -eq 1 ]; then
    step_status=ok step_note="dry run: $(grep '^MISSING' "$step_log" | cut -c1-200) (expected without a GPU)"
    step_err=""
  fi
  finish_step 00-preflight
  if [ $step_status != ok ]; then
    echo "gpu-check: $(grep '^MISSING' "$step_log"); nothing else can run" >&2
    preflight_failed=1
  fi
fi

# ---- 00: the bundle --------------------------------------------------------
bundle_check() {
  local bad=0
  "$bin" --help >/dev/null || bad=1
  if [ -f "$root/ollama/CMakeLists.txt" ]; then
    for f in CMakeLists.txt ml/backend/ggml/ggml/src/CMakeLists.txt ml/backend/ggml/ggml/src/ggml-cuda/CMakeLists.txt \
             ml/backend/ggml/ggml/include/ggml.h ml/backend/ggml/ggml/cmake/common.cmake; do
      [ -f "$root/ollama/$f" ] || { echo "missing ollama/$f"; bad=1; }
    done
    extra=$(find "$root/ollama" -name '*.go' | head -3)
    [ -z "$extra" ] || { echo "Go files in the bundle: $extra"; bad=1; }
    size=$(du -sb "$root" | cut -f1)
    echo "bundle: $size bytes"
    [ "$size" -le 60000000 ] || { echo "bundle is $size bytes, over 60 MB"; bad=1; }
    case "$state/" in "$root"/*) echo "state $state is inside the bundle, which the next call replaces"; bad=1 ;; esac
  else
    echo "running from a checkout; CMake source: ${ollama_dir:-none found}"
    [ -n "$ollama_dir" ] || bad=1
  fi
  echo "CUDA sources: $(ls "$ollama_dir"/ml/backend/ggml/ggml/src/ggml-cuda/*.cu 2>/dev/null | wc -l) kernels, $(ls "$ollama_dir"/ml/backend/ggml/ggml/src/ggml-cuda/template-instances/ 2>/dev/null | wc -l) template instances"
  return $bad
}
if [ -z "${preflight_failed:-}" ] && { [ $dry -eq 1 ] || ! done_before 00-bundle; }; then
  run_step 00-bundle 20 "" bundle_check
  finish_step 00-bundle
fi

# ---- 01: configure, build, models -------------------------------------------
cuda_build="$state/cuda"
libdir="$cuda_build/lib/ollama"
# Options, each cutting the build without losing what this check measures:
#   one architecture, SASS only (${arch}-real): no PTX, no other GPUs
#   GGML_CUDA_NO_FA: the 31 flash-attention template instances compile to
#     stubs; costs flash attention on the GPU (llama.cpp's "auto" then uses
#     the plain attention path; a quantized V cache needs flash attention).
#     Training never uses it. GPU_CHECK_FA=1 keeps it.
#   GGML_CUDA_FA_ALL_QUANTS off (the default): 3 of the 18 vec instances
#   target ggml-cuda only: no CPU variants, no other backends
cuda_flags="-DGGML_CUDA_NO_FA"
[ "${GPU_CHECK_FA:-0}" = 1 ] && cuda_flags=""
configure_args() { # ARCH
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  printf '%s\n' -S "$ollama_dir" -B "$cuda_build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_DISABLE_FIND_PACKAGE_Vulkan=ON
  if [ -n "$nvcc_bin" ]; then
    printf '%s\n' "-DCMAKE_CUDA_COMPILER=$nvcc_bin" "-DCUDAToolkit_ROOT=$(cd "$(dirname "$nvcc_bin")/.." && pwd)" \
      "-DCMAKE_CUDA_ARCHITECTURES=$1" "-DCMAKE_CUDA_FLAGS=$cuda_flags"
  fi
}

m_toy="$state/models/toy-q8_0.gguf" m_init="$state/models/init-f32.gguf" m1="$state/models/1b-q4_0.gguf" m8="$state/models/llama3-8b-q4_0.gguf"
write_models() { # the models every later step needs, each once
  [ -s "$m_toy" ] || "$bin" model random --shape toy --type q8_0 --out "$m_toy" "${tokflag[@]}" || return 1
  [ -s "$m_init" ] || "$bin" model init --out "$m_init" --layers 2 --embd 64 --heads 4 --ff 128 --ctx 512 || return 1
  [ $dry -eq 1 ] && return 0
  [ -s "$m1" ] || "$bin" model random --shape 1b --type q4_0 --out "$m1" "${tokflag[@]}" || return 1
  [ -s "$m8" ] || "$bin" model random --shape llama3-8b --type q4_0 --out "$m8" "${tokflag[@]}" || return 1
  ls -l "$state/models"
}

if [ -z "${preflight_failed:-}" ]; then
  if [ $dry -eq 1 ]; then
    # Configure the bundle's CMake project on this CPU machine: CMake finds
    # no CUDA compiler and leaves the backend out, but every CMake file and
    # source list the device will read is checked. Nothing is compiled.
    if command -v cmake >/dev/null; then
      cuda_build="$work/cmake-dry"
      rm -rf "$cuda_build"
      mapfile -t cargs < <(configure_args 90-real)
      run_step 01-configure 240 "dry run: configured without CUDA (no nvcc here); the device adds CMAKE_CUDA_ARCHITECTURES=<cc>-real and -DGGML_CUDA_NO_FA" \
        cmake "${cargs[@]}"
      finish_step 01-configure
    else
      skip 01-configure 240 "cmake is not installed on this machine"
    fi
    skip 01-build 420 "dry run: compiling the CUDA backend needs nvcc and a GPU"
  elif [ -f "$libdir/libggml-cuda.so" ]; then
    echo "call $call 01-build: reusing $libdir/libggml-cuda.so" >&2
  else
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    arch="${arch:-90}-real"
    # the models are written while nvcc compiles (CPU work the build leaves room for)
    ( nice -n 10 bash -c "$(declare -f write_models); $(declare -p bin m_toy m_init m1 m8 dry state tokflag); write_models" \
        >"$logs/01-models.log" 2>&1; echo $? >"$work/models.rc" ) &
    models_pid=$!
    mapfile -t cargs < <(configure_args "$arch")
    run_step 01-configure 90 "CMAKE_CUDA_ARCHITECTURES=$arch, CUDA flags '${cuda_flags}'" cmake "${cargs[@]}"
    finish_step 01-configure
    if [ $step_status = ok ]; then
      l=$(left)
      run_step 01-build $((l - 20)) "ggml-cuda only, -j $threads, $(grep -c '\.cu\.o' "$cuda_build/build.ninja" 2>/dev/null || echo '?') CUDA objects" \
        cmake --build "$cuda_build" --target ggml-cuda -j "$threads"
      finish_step 01-build
    fi
  fi
fi
if [ -n "${models_pid:-}" ]; then
  wait "$models_pid"
  rc=$(cat "$work/models.rc" 2>/dev/null || echo 1)
  record 01-models "$([ "$rc" = 0 ] && echo ok || echo failed)" "" "" "" "" "$([ "$rc" = 0 ] || tail -1 "$logs/01-models.log")" "written during the build"
elif [ -z "${preflight_failed:-}" ]; then
  run_step 01-models 240 "$([ $dry -eq 1 ] && echo 'dry run: toy and init models only')" write_models
  [ $dry -eq 1 ] || [ "$step_secs" != "0.0" ] && finish_step 01-models
fi

gpuflag=(--gpu --backend-dir "$libdir")
[ $dry -eq 1 ] && gpuflag=()
ready=1
[ -n "${preflight_failed:-}" ] && ready=0
[ $dry -eq 0 ] && [ ! -f "$libdir/libggml-cuda.so" ] && ready=0

# ---- checks, in priority order --------------------------------------------
ft_rows() { # N FILE: rows longer than --batch/2 tokens: one optimizer step each
  for i in $(seq 1 "$1"); do
    printf '{"id":"f%d","prompt":"Tom has %d marbles and wins %d more in each of %d games, then gives away a third of them. How many marbles does Tom keep, and how many did he give away? Explain each step.","plan":"start = %d\\nwon = %d * 3\\ntotal = add(start, won)\\ngiven = divide(total, 3)\\nreturn subtract(total, given), given","response":"Tom starts with %d marbles and wins %d in each of 3 games, %d in all, so he has %d. A third is %d: he keeps %d and gives away %d."}\n' \
      "$i" $((i * 3)) $((i + 2)) 3 $((i * 3)) $((i + 2)) $((i * 3)) $((i + 2)) $((3 * (i + 2))) $((i * 3 + 3 * (i + 2))) $(((i * 3 + 3 * (i + 2)) / 3)) $((i * 3 + 3 * (i + 2) - (i * 3 + 3 * (i + 2)) / 3)) $(((i * 3 + 3 * (i + 2)) / 3))
  done >"$2"
}
ft_tps() { # log.csv -> mean tokens_per_s over the steps
  awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="tokens_per_s") c=i; next} c&&$c!=""{s+=$c; n++} END{if(n) printf "%.1f", s/n}' "$1" 2>/dev/null
}
finetune_run() { # MODEL ROWS OUT [finetune flags...]
  local model="$1" n="$2" o="$3"; shift 3
  ft_rows "$n" "$work/ft-$n.jsonl"
  rm -f "$o" "${o%.gguf}".*
  "$bin" finetune "$model" "${gpuflag[@]}" --data "$work/ft-$n.jsonl" --out "$o" --epochs 1 \
    --ctx 256 --batch 256 --val-split 0 --threads "$threads" "$@" || return 1
  echo "steps: $(awk 'END{print NR-1}' "${o%.gguf}.log.csv")"
}
info_check() {
  "$bin" info --system "${gpuflag[@]}" || return 1
  if [ $have_gpu -eq 1 ]; then
    "$bin" info --system "${gpuflag[@]}" | grep -qiE 'cuda' || { echo "no CUDA device in codeplan info --system"; return 1; }
  fi
}
big="$m8"
[ $dry -eq 1 ] && big="$m_toy"
corpus="$work/rows.jsonl"
rows=512 plan=64 par=64
[ $dry -eq 1 ] && rows=4 plan=8 par=2
for i in $(seq 1 $rows); do
  printf '{"id":"r%d","prompt":"A shop sells boxes of %d pencils at %d dollars a box. Anna buys %d boxes and pays with a 100 dollar note. How many pencils does she get and how much change?","response":"Anna gets %d x %d = %d pencils. They cost %d x %d = %d dollars, so her change is %d dollars."}\n' \
    $i $((i % 12 + 6)) $((i % 9 + 2)) $((i % 5 + 1)) $((i % 5 + 1)) $((i % 12 + 6)) $(((i % 5 + 1) * (i % 12 + 6))) \
    $((i % 5 + 1)) $((i % 9 + 2)) $(((i % 5 + 1) * (i % 9 + 2))) $((100 - (i % 5 + 1) * (i % 9 + 2)))
done >"$corpus"
chat_turn() { printf 'What is 17 * 23 + 4?\n' | "$bin" chat "$big" "${gpuflag[@]}" --json --max-plan-tokens "$1" --max-tokens "$1" --threads "$threads"; }
cpu_note() { [ $dry -eq 1 ] && echo "dry run, CPU: $1"; }

if [ $ready -eq 1 ]; then
  budgeted 02-info 5 20 "$(cpu_note 'no --gpu')" info_check && finish_step 02-info
  budgeted 03-ft-lora 20 60 "1 LoRA step, toy model$([ $dry -eq 1 ] && echo '; dry run, CPU')" \
    finetune_run "$m_toy" 1 "$work/ft-lora.gguf" --lora-rank 8 && finish_step 03-ft-lora "$(ft_tps "$work/ft-lora.log.csv")"
  budgeted 04-ft-full 20 60 "1 full-training step, model init$([ $dry -eq 1 ] && echo '; dry run, CPU')" \
    finetune_run "$m_init" 1 "$work/ft-full.gguf" --full && finish_step 04-ft-full "$(ft_tps "$work/ft-full.log.csv")"
  if [ $dry -eq 0 ]; then
    budgeted 05-bench 60 90 "llama3-8b Q4_0, parallel 1,8,32,64; prompt 512, generate 128" \
      "$bin" bench "$big" "${gpuflag[@]}" --parallels 1,8,32,64 --pp 512 --tg 128 --json
  else
    budgeted 05-bench 60 240 "dry run, CPU, toy shape: parallel 1,4; prompt 32, generate 8" \
      "$bin" bench "$big" --parallels 1,4 --pp 32 --tg 8 --json --threads "$threads"
  fi && {
    grep '^{"parallel"' "$step_log" >"$state/bench.jsonl" 2>/dev/null
    finish_step 05-bench "$(grep -o '"tg_tok_s":[0-9.e+-]*' "$step_log" | tail -1 | cut -d: -f2)"
  }
  rm -f "$work/plans.jsonl" "$work/plans.rejects.jsonl"
  budgeted 06-extract 45 60 "$rows rows, --parallel $par, plans <= $plan tokens$([ $dry -eq 1 ] && echo '; dry run, CPU, toy shape')" \
    "$bin" extract "$big" "${gpuflag[@]}" --input "$corpus" --output "$work/plans.jsonl" --parallel $par \
      --ctx $((par * 1024)) --max-plan-tokens $plan --threads "$threads" &&
    finish_step 06-extract "$(sed -n 's/.*rows\/s, \([0-9.]*\) generated tok\/s.*/\1/p' "$step_log" | tail -1)"
  budgeted 07-chat 10 20 "one turn$([ $dry -eq 1 ] && echo '; dry run, CPU, toy shape')" chat_turn "$([ $dry -eq 1 ] && echo 8 || echo 64)" &&
    finish_step 07-chat
  if [ $dry -eq 0 ]; then
    budgeted 08-ft-1b 45 60 "20 LoRA steps, 1b shape, rank 16" finetune_run "$m1" 20 "$work/ft-1b.gguf" --lora-rank 16 &&
      finish_step 08-ft-1b "$(ft_tps "$work/ft-1b.log.csv")"
    budgeted 09-ft-8b 60 90 "5 LoRA steps, llama3-8b shape, rank 16" finetune_run "$m8" 5 "$work/ft-8b.gguf" --lora-rank 16 &&
      finish_step 09-ft-8b "$(ft_tps "$work/ft-8b.log.csv")"
  else
    skip 08-ft-1b 60 "dry run: 20 LoRA steps of the 1b shape need the GPU"
    skip 09-ft-8b 90 "dry run: the llama3-8b shape needs the GPU"
  fi
  if [ -f "$root/scripts/gpu-check-peft.py" ]; then
    if command -v python3 >/dev/null && python3 -c 'import torch, transformers, peft' 2>/dev/null; then
      budgeted 10-peft 60 90 "transformers + peft against codeplan" \
        python3 "$root/scripts/gpu-check-peft.py" --codeplan "$bin" --work "$work/peft" "${gpuflag[@]}" && finish_step 10-peft
    else
      budgeted 10-peft 5 60 "python3 without torch/transformers/peft here: the script is only compiled" \
        python3 -m py_compile "$root/scripts/gpu-check-peft.py" && finish_step 10-peft
    fi
  fi
else
  for s in 02-info 03-ft-lora 04-ft-full 05-bench 06-extract 07-chat 08-ft-1b 09-ft-8b; do
    done_before "$s" || skip "$s" 0 "$([ -n "${preflight_failed:-}" ] && echo 'preflight failed' || echo 'no CUDA backend built (01-build)')"
  done
fi

# ---- report (every call's steps) ----------------------------------------
gpu_name=""
[ $have_gpu -eq 1 ] && gpu_name=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
order() { # the last record of each step that ran (else its last skip), in run order
  awk -F"$sep" '{ if (!($2 in seen)) { seen[$2] = 1; names[n++] = $2 }
                  if ($3 != "skipped" || !($2 in ran)) { last[$2] = $0 } if ($3 != "skipped") { ran[$2] = 1 } }
                END { for (i = 0; i < n; i++) print last[names[i]] }' "$steps_file"
}
{
  printf '{\n  "dry_run": %s,\n  "date": %s,\n  "host": %s,\n  "gpu": %s,\n  "cpus": %s,\n  "tokenizer": %s,\n  "call": %s,\n  "budget_s": %s,\n' \
    "$([ $dry -eq 1 ] && echo true || echo false)" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$(uname -srm)")" \
    "$(json_str "$gpu_name")" "$threads" "$(json_str "${tok:+llama3}")" "$call" "$budget"
  printf '  "device_calls": [{"call": 1, "command": "bash gpu-bundle/scripts/gpu-check.sh --budget %s $OUT", "timeout_s": %s}, {"call": 2, "command": "bash gpu-bundle/scripts/gpu-check.sh --budget %s $OUT", "timeout_s": %s}],\n  "device_total_s": %s,\n  "steps": [\n' \
    "$CALL1_BUDGET" "$CALL1_TIMEOUT" "$CALL2_BUDGET" "$CALL2_TIMEOUT" "$DEVICE_TOTAL"
  first=1
  while IFS="$sep" read -r c n st se to tp pk er no; do
    [ $first -eq 1 ] || printf ',\n'
    first=0
    printf '    {"call": %s, "step": %s, "status": %s, "seconds": %s, "timeout_s": %s, "tokens_per_s": %s, "peak_gpu_mib": %s, "error": %s, "note": %s}' \
      "$c" "$(json_str "$n")" "$(json_str "$st")" "$(json_num "$se")" "$(json_num "$to")" "$(json_num "$tp")" "$(json_num "$pk")" "$(json_str "$er")" "$(json_str "$no")"
  done < <(order)
  printf '\n  ],\n  "bench": [%s]\n}\n' "$(grep -h '^{' "$state/bench.jsonl" 2>/dev/null | paste -sd, -)"
} >"$out/report.json"

{
  echo "# codeplan GPU check$([ $dry -eq 1 ] && echo ' (dry run: no GPU)')"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $threads CPUs${gpu_name:+, $gpu_name}${tok:+, Llama-3 tokenizer}; call $call, budget $budget s."
  echo
  echo "Device protocol (${DEVICE_TOTAL} s at most with a ${MACHINE_START} s machine start):"
  echo "1. \`bash gpu-bundle/scripts/gpu-check.sh --budget $CALL1_BUDGET \$OUT\`, device timeout $CALL1_TIMEOUT s: preflight, build, checks in order"
  echo "2. at once: \`bash gpu-bundle/scripts/gpu-check.sh --budget $CALL2_BUDGET \$OUT\`, device timeout $CALL2_TIMEOUT s: the checks call 1 had no time for"
  echo
  echo "| call | step | status | seconds | tok/s | peak GPU MiB | error or note |"
  echo "|--:|---|---|--:|--:|--:|---|"
  while IFS="$sep" read -r c n st se to tp pk er no; do
    echo "| $c | $n | $st | ${se:--} | ${tp:--} | ${pk:--} | $(echo "${er:-$no}" | tr '|' '/') |"
  done < <(order)
  if grep -q '^{' "$state/bench.jsonl" 2>/dev/null; then
    echo
    echo "| parallel | prompt tok/s | generated tok/s |"
    echo "|--:|--:|--:|"
    grep '^{' "$state/bench.jsonl" | sed -n 's/.*"parallel":\([0-9]*\).*"pp_tok_s":\([0-9.e+-]*\).*"tg_tok_s":\([0-9.e+-]*\).*/| \1 | \2 | \3 |/p'
  fi
} >"$out/report.md"

# The device returns at most 8 files: the logs travel as one archive.
tar -czf "$out/logs.tar.gz" -C "$state" logs
echo "report: $out/report.md, $out/report.json, logs in $out/logs.tar.gz" >&2
[ -n "${preflight_failed:-}" ] && exit 2
awk -F"$sep" -v c="$call" '$1 == c && ($3 == "failed" || $3 == "timeout") {f=1} END {exit f}' "$steps_file" || exit 1
exit 0
