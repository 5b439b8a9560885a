#!/usr/bin/env bash
# peer-bench.sh: measure codeplan against llama.cpp's own tools on the same model, threads and
# slots, and print the ratios (codeplan / llama.cpp; above 1 means codeplan is faster).
#
# llama.cpp is built outside the repository (never committed) from $LLAMA_CPP_DIR when that is a
# checkout, else from the source bundled in the npm package node-llama-cpp (pinned version and
# checksum below; its llama/gitRelease.bundle is a git bundle of the llama.cpp tree).
#
# Usage:
#   scripts/peer-bench.sh --build-only            # build llama-batched-bench, llama-server, llama-perplexity
#   scripts/peer-bench.sh MODEL.gguf [ROWS.jsonl] # build if needed, then compare
#
# Environment:
#   PEER_DIR       where the llama.cpp source and build live (default ~/.cache/codeplan/peer)
#   LLAMA_CPP_DIR  an existing llama.cpp checkout to build instead of the npm bundle
#   CODEPLAN       the codeplan binary (default: bin/codeplan, built with `make build` if missing)
#   THREADS        threads for both sides (default: number of cores)
#   PARALLEL       sequences / server slots for both sides (default 8)
#   PP, TG         prompt and generated tokens per sequence for the bench (default 704 and 64,
#                  the shape of an extraction with the paper's template)
#   ROWS           rows to extract in the extract comparison (default 40, cycling through
#                  ROWS.jsonl, default examples/sample.jsonl, whose rows need an "id")
#   RUNS           extract runs per side, alternating, each llama-server fresh; medians are
#                  reported (default 3)
#   TEMPLATE       extraction template for both sides (default paper; or structured)
#   PLAN_TOKENS    --max-plan-tokens for both sides (default 384)
#   SLOT_CTX       cells per sequence/slot on both sides (default 4096)
#   PREDICT        true: codeplan also times its bench prediction (after the run, not counted)
#   SKIP_BATCHED   set: skip the batched-bench comparison
#   JOBS           build jobs (default: number of cores)
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
# sha512 of node-llama-cpp-3.22.1.tgz (the registry's dist.integrity, in hex).
NODE_LLAMA_CPP_SHA512=6e5b488a9b9699cd76dc7eed30880318a4ac4ab866865418795502e3c5d38d55bb5c624988927209d95333343f2e25a83e4183a5c2f816f883a60c3ba9f4e20f

PEER_DIR=${PEER_DIR:-$HOME/.cache/codeplan/peer}
THREADS=${THREADS:-$(nproc)}
PARALLEL=${PARALLEL:-8}
PP=${PP:-704}
TG=${TG:-64}
ROWS=${ROWS:-40}
JOBS=${JOBS:-$(nproc)}
TARGETS=(llama-batched-bench llama-server llama-perplexity)

die() { echo "peer-bench: $*" >&2; exit 1; }
log() { echo "peer-bench: $*" >&2; }

# source_dir prints the llama.cpp source to build, fetching it from npm when needed.
source_dir() {
	if [[ -n ${LLAMA_CPP_DIR:-} ]]; then
		[[ -f $LLAMA_CPP_DIR/CMakeLists.txt ]] || die "LLAMA_CPP_DIR=$LLAMA_CPP_DIR holds no CMakeLists.txt"
		echo "$LLAMA_CPP_DIR"
		return
	fi
	local src=$PEER_DIR/llama.cpp
	if [[ -f $src/CMakeLists.txt ]]; then
		echo "$src"
		return
	fi
	command -v npm >/dev/null || die "npm is needed to fetch node-llama-cpp (or set LLAMA_CPP_DIR)"
	command -v git >/dev/null || die "git is needed to unpack the llama.cpp bundle"
	local dl=$PEER_DIR/npm
	mkdir -p "$dl"
	local tgz=$dl/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz
	if [[ ! -f $tgz ]]; then
		log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION from npm"
		(cd "$dl" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null 2>&1) ||
			die "npm pack node-llama-cpp@$NODE_LLAMA_CPP_VERSION failed"
	fi
	local sum
	sum=$(sha512sum "$tgz" | cut -d' ' -f1)
	if [[ $sum != "$NODE_LLAMA_CPP_SHA512" ]]; then
		rm -f "$tgz"
		die "checksum mismatch for node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz (got $sum); file removed"
	fi
	rm -rf "$dl/package"
	tar -xzf "$tgz" -C "$dl" package/llama/gitRelease.bundle
	rm -rf "$src.tmp"
	git -c advice.detachedHead=false clone --quiet "$dl/package/llama/gitRelease.bundle" "$src.tmp" >&2 ||
		die "git clone of the bundle failed"
	mv "$src.tmp" "$src"
	rm -rf "$dl/package"
	echo "$src"
}

build() {
	local src
	src=$(source_dir)
	local bdir=$PEER_DIR/build
	local have=1
	for t in "${TARGETS[@]}"; do [[ -x $bdir/bin/$t ]] || have=0; done
	if [[ $have == 1 ]]; then
		log "llama.cpp tools already built in $bdir/bin"
		return
	fi
	command -v cmake >/dev/null || die "cmake is needed (Debian: apt-get install cmake)"
	log "building ${TARGETS[*]} from $src into $bdir (several minutes)"
	cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF >"$PEER_DIR/cmake.log" 2>&1 ||
		die "cmake configure failed; see $PEER_DIR/cmake.log"
	cmake --build "$bdir" -j "$JOBS" --target "${TARGETS[@]}" >"$PEER_DIR/build.log" 2>&1 ||
		die "build failed; see $PEER_DIR/build.log"
	log "built: $(cd "$bdir/bin" && echo "${TARGETS[@]}")"
}

# num KEY FILE prints the first number stored under "KEY" in a JSON file (any layout).
num() { grep -o "\"$1\": *[-0-9.e+]*" "$2" | head -1 | sed 's/.*: *//'; }
# ratio A B prints A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

mkdir -p "$PEER_DIR"
if [[ ${1:-} == --build-only ]]; then
	build
	exit 0
fi
[[ $# -ge 1 && -f $1 ]] || die "usage: $0 --build-only | MODEL.gguf [ROWS.jsonl]"
MODEL=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${2:-$ROOT/examples/sample.jsonl}
build
BIN=$PEER_DIR/build/bin
CODEPLAN=${CODEPLAN:-$ROOT/bin/codeplan}
if [[ ! -x $CODEPLAN ]]; then
	log "building codeplan (make build)"
	make -C "$ROOT" build >&2
fi
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
	[[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

log "model $MODEL, $THREADS threads, $PARALLEL sequences/slots, flash attention off, per-sequence KV"

# cpu_s PID prints the user+system CPU seconds a live process has used.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# median prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# 1. Batched decoding at extraction's shape: same model, threads, sequences, batch.
if [[ -z ${SKIP_BATCHED:-} ]]; then
	CTX=$((PARALLEL * (PP + TG)))
	"$CODEPLAN" -q bench "$MODEL" --threads "$THREADS" --parallels "$PARALLEL" --pp "$PP" --tg "$TG" \
		--batch 512 --flash-attn off --poll 0 --json >"$WORK/ours.json"
	"$BIN/llama-batched-bench" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -c "$CTX" -b 512 -ub 512 -fa off -no-kvu --poll 0 \
		-npp "$PP" -ntg "$TG" -npl "$PARALLEL" --output-format jsonl 2>"$WORK/theirs.log" | grep '^{' >"$WORK/theirs.json" ||
		die "llama-batched-bench failed; see its log above"
	OURS_PP=$(num pp_tok_s "$WORK/ours.json")
	OURS_TG=$(num tg_tok_s "$WORK/ours.json")
	THEIRS_PP=$(num speed_pp "$WORK/theirs.json")
	THEIRS_TG=$(num speed_tg "$WORK/theirs.json")
fi

# 2. Extraction of the same rows, RUNS times, alternating: in-process, then
# through a fresh llama-server (it caches prompts across requests, so a
# reused server would be flattered). Both sides get the same template, plan
# limit, threads and sequences/slots, and 4096 cells per sequence/slot.
[[ -s $CORPUS ]] || die "$CORPUS is empty"
grep -q '"id": *"' "$CORPUS" || die "$CORPUS: rows need a string \"id\" field (copies get -0, -1, ... appended)"
grep -q '"prompt": *"' "$CORPUS" || die "$CORPUS: rows need a string \"prompt\" field (copies after the first get \"(copy N) \" put before it)"
rows="$WORK/rows.jsonl"
: >"$rows"
# Copies after the first get a marker at the start of their prompt, so that
# no two rows are the same text: llama-server keeps earlier prompts' KV in a
# RAM cache (--cache-ram, 8 GiB by default) and would skip the prompt of a
# repeated row, which a real corpus does not repeat (with 40 rows cycling
# 24, unmarked, llama-server looked 1.18x faster than codeplan; on the 24
# unique rows alone, 1.04x).
for ((k = 0; $(wc -l <"$rows") < ROWS; k++)); do
	mark=""
	((k == 0)) || mark="(copy $k) "
	sed -e "s/\"id\": *\"\([^\"]*\)\"/\"id\": \"\1-$k\"/" -e "s/\"prompt\": *\"/\"prompt\": \"$mark/" "$CORPUS" >>"$rows"
done
head -n "$ROWS" "$rows" >"$WORK/in.jsonl"
SLOT_CTX=${SLOT_CTX:-4096}
RUNS=${RUNS:-3}
TEMPLATE=${TEMPLATE:-paper}
PLAN_TOKENS=${PLAN_TOKENS:-384}
PORT=${PORT:-18763}
common=(--input "$WORK/in.jsonl" --template "$TEMPLATE" --max-plan-tokens "$PLAN_TOKENS")
# rate FILE prints rows/s, generated tokens and prompt tokens of a summary.
rate() { awk -v n="$(num processed "$1")" -v ns="$(num elapsed_ns "$1")" 'BEGIN { printf "%.4f", n / (ns / 1e9) }'; }
declare -a OURS_R THEIRS_R OURS_C THEIRS_C
log "extract: $ROWS rows, template $TEMPLATE, plans up to $PLAN_TOKENS tokens, $RUNS alternating run(s) each"
for ((r = 1; r <= RUNS; r++)); do
	rm -f "$WORK"/ours.* "$WORK"/theirs.*
	load=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/env time -f "%U %S" -o "$WORK/ours.time" "$CODEPLAN" -q extract "$MODEL" "${common[@]}" --output "$WORK/ours.plans.jsonl" \
		--threads "$THREADS" --parallel "$PARALLEL" --ctx $((SLOT_CTX * (PARALLEL + 1))) --poll 0 --predict="${PREDICT:-false}" \
		--summary "$WORK/ours.summary.json" >/dev/null
	ours_cpu=$(awk '{ print $1 + $2 }' "$WORK/ours.time")
	"$BIN/llama-server" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -np "$PARALLEL" -c $((SLOT_CTX * PARALLEL)) -fa off -no-kvu --poll 0 \
		--host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 600); do
		curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "llama-server exited"; }
		sleep 1
	done
	cpu0=$(cpu_s "$SERVER_PID")
	"$CODEPLAN" -q extract --backend openai --base-url "http://127.0.0.1:$PORT/v1" --model "$(basename "$MODEL")" \
		"${common[@]}" --output "$WORK/theirs.plans.jsonl" --concurrency "$PARALLEL" \
		--summary "$WORK/theirs.summary.json" >/dev/null
	theirs_cpu=$(awk -v a="$cpu0" -v b="$(cpu_s "$SERVER_PID")" 'BEGIN { print b - a }')
	kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	og=$(num generated_tokens "$WORK/ours.summary.json")
	tg=$(num generated_tokens "$WORK/theirs.summary.json")
	OURS_R+=("$(rate "$WORK/ours.summary.json")")
	THEIRS_R+=("$(rate "$WORK/theirs.summary.json")")
	OURS_C+=("$(awk -v g="$og" -v c="$ours_cpu" 'BEGIN { printf "%.2f", g / c }')")
	THEIRS_C+=("$(awk -v g="$tg" -v c="$theirs_cpu" 'BEGIN { printf "%.2f", g / c }')")
	printf 'run %d (load %s->%s): codeplan %s rows/s, %s generated tok/CPU-s (%s prompt + %s generated tokens); llama-server %s rows/s, %s generated tok/CPU-s (%s + %s)\n' \
		"$r" "$load" "$(cut -d' ' -f1 /proc/loadavg)" "${OURS_R[-1]}" "${OURS_C[-1]}" "$(num prompt_tokens "$WORK/ours.summary.json")" "$og" \
		"${THEIRS_R[-1]}" "${THEIRS_C[-1]}" "$(num prompt_tokens "$WORK/theirs.summary.json")" "$tg"
	[[ $og == "$tg" ]] || log "run $r: generated tokens differ ($og vs $tg): compare rows/s with care"
done
OURS_ROWS=$(median "${OURS_R[@]}")
THEIRS_ROWS=$(median "${THEIRS_R[@]}")
OURS_CPU=$(median "${OURS_C[@]}")
THEIRS_CPU=$(median "${THEIRS_C[@]}")

echo
echo "peer-bench: codeplan vs llama.cpp ($(git -C "$(source_dir)" log -1 --format=%h 2>/dev/null || echo "?")), $(basename "$MODEL")"
echo "threads $THREADS (idle threads sleep: --poll 0 on both), $PARALLEL sequences/slots, batch 512, flash attention off, per-sequence KV"
echo
echo "                                    codeplan    llama.cpp   ratio"
if [[ -z ${SKIP_BATCHED:-} ]]; then
	printf 'batched  prompt tok/s (pp %s)     %10.1f %12.1f   %s\n' "$PP" "$OURS_PP" "$THEIRS_PP" "$(ratio "$OURS_PP" "$THEIRS_PP")"
	printf 'batched  generation tok/s (tg %s)  %10.1f %12.1f   %s\n' "$TG" "$OURS_TG" "$THEIRS_TG" "$(ratio "$OURS_TG" "$THEIRS_TG")"
fi
printf 'extract  rows/s, median of %d        %10.3f %12.3f   %s   (%s template; llama.cpp: fresh llama-server, driven by extract --backend openai)\n' \
	"$RUNS" "$OURS_ROWS" "$THEIRS_ROWS" "$(ratio "$OURS_ROWS" "$THEIRS_ROWS")" "$TEMPLATE"
printf 'extract  generated tok/CPU-s, median  %10.1f %12.1f   %s   (codeplan: whole process; llama-server: its CPU during the run)\n' \
	"$OURS_CPU" "$THEIRS_CPU" "$(ratio "$OURS_CPU" "$THEIRS_CPU")"
if [[ ${PREDICT:-false} == true ]]; then
	PRED_ROWS=$(printf '%.3f' "$(num predicted_rows_s "$WORK/ours.summary.json")")
	echo "extract  achieved / bench prediction  $(ratio "${OURS_R[-1]}" "$PRED_ROWS")   (last run; predicted $PRED_ROWS rows/s at the run's context and mean token counts)"
fi
echo
echo "Ratios above 1 mean codeplan is faster. Timings on a busy machine are noisy: prefer tokens per CPU-second there."
