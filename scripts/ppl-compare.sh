#!/usr/bin/env bash
# Compare `codeplan perplexity --chunk N` with llama.cpp's own llama-perplexity -c N
# on the same text, model (and adapter), scoring the same tokens.
#
# usage: scripts/ppl-compare.sh MODEL.gguf TEXT_FILE [N] [--lora ADAPTER.gguf]
#   LLAMA_PERPLEXITY  path of llama-perplexity (default: on PATH)
#   CODEPLAN          path of codeplan (default: ./codeplan, else on PATH)
#   THREADS           threads for both (default 2)
#
# llama-perplexity tokenizes the whole file (BOS first when the model adds one),
# cuts it into chunks of N tokens (dropping the remainder), puts BOS in place of
# each chunk's first token and scores only the second half of every chunk.
# codeplan's --chunk N does exactly that on one row holding the file's text, so
# the two "Final estimate" figures must agree up to floating-point differences
# between the two builds. Flash attention is off on both sides (codeplan's CPU
# default); the KV cache is f16 on both.
set -euo pipefail
if [ $# -lt 2 ]; then
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
model=$1 text=$2 n=${3:-512}
shift $(($# < 3 ? $# : 3))
lora=()
if [ "${1:-}" = "--lora" ]; then lora=(--lora "$2"); fi
ppl=${LLAMA_PERPLEXITY:-llama-perplexity}
cp=${CODEPLAN:-./codeplan}
[ -x "$cp" ] || cp=codeplan
threads=${THREADS:-2}
if [ "$model" = tiny ]; then model=$("$cp" model tiny --print-path); fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jq -cRs '{id: "text", text: .}' "$text" >"$tmp/text.jsonl"

theirs=$(nice "$ppl" -m "$model" "${lora[@]}" -f "$text" -c "$n" -t "$threads" -fa off 2>&1 |
	sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
ours=$(nice "$cp" -q perplexity "$model" "${lora[@]}" --input "$tmp/text.jsonl" --chunk "$n" \
	--ctx $((4 * n)) --parallel 4 --threads "$threads" 2>&1 | sed -n 's/^perplexity \([0-9.]*\) over \([0-9]*\) tokens.*/\1 \2/p')
if [ -z "$theirs" ] || [ -z "$ours" ]; then
	echo "ppl-compare: a run failed (llama-perplexity: '${theirs}', codeplan: '${ours}')" >&2
	exit 1
fi
set -- $ours
awk -v a="$theirs" -v b="$1" -v tok="$2" -v n="$n" 'BEGIN {
	printf "chunk %d, %d scored tokens\n  llama-perplexity  %.4f\n  codeplan          %.4f\n  relative diff     %.2e\n", n, tok, a, b, (b - a) / a }'
