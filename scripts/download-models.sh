#!/usr/bin/env bash
# Download instruct GGUF models for codeplan (needs internet access; tests and
# the demo never call this: they use the built-in tiny model).
#
#   scripts/download-models.sh [llama3|mistral|all] [DIR]
#
# Files come from Hugging Face repositories that publish GGUF quantisations.
# Q4_K_M is a good default for 8 GB GPUs and CPUs; change QUANT for others
# (Q8_0, F16 — finetune needs an F16/F32 or Q8_0/Q4_0 base, see README).
set -euo pipefail
which="${1:-llama3}"
dir="${2:-models}"
QUANT="${QUANT:-Q4_K_M}"
mkdir -p "$dir"

fetch() { # repo file
  local url="https://huggingface.co/$1/resolve/main/$2"
  if [ -s "$dir/$2" ]; then echo "have $dir/$2"; return; fi
  echo "downloading $url"
  curl -fL --retry 3 -C - -o "$dir/$2.part" ${HF_TOKEN:+-H "Authorization: Bearer $HF_TOKEN"} "$url"
  mv "$dir/$2.part" "$dir/$2"
}

case "$which" in
  llama3|all) fetch "bartowski/Meta-Llama-3-8B-Instruct-GGUF" "Meta-Llama-3-8B-Instruct-$QUANT.gguf" ;;&
  mistral|all) fetch "bartowski/Mistral-7B-Instruct-v0.3-GGUF" "Mistral-7B-Instruct-v0.3-$QUANT.gguf" ;;&
  llama3|mistral|all) ;;
  *) echo "usage: $0 [llama3|mistral|all] [DIR]" >&2; exit 2 ;;
esac
ls -lh "$dir"
