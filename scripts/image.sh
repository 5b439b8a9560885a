#!/usr/bin/env bash
# Builds the codeplan OCI image FROM scratch: /bin/codeplan, the shared
# libraries ldd lists for it (and the dynamic loader) at the paths ldd gives,
# an empty /tmp, and, when lib/codeplan holds a GPU backend (make cuda), that
# backend in /lib/codeplan with the CUDA runtime libraries it links against.
# The GPU driver (libcuda) is left out: the NVIDIA container toolkit brings
# the host's. Nothing is downloaded, so it works offline. `make image` runs it.
#
# Environment (all optional):
#   BIN=bin/codeplan  LIBDIR=lib/codeplan  IMAGE=codeplan  VERSION=<git describe>
#   LLAMA_COMMIT=<from the ollama module>  CONTEXT=build/image (build folder)
#   CONTAINER_TOOL=podman|docker (default: podman if installed, else docker)
#   EXTRA_TAG=latest (a second tag; empty for none)
set -euo pipefail
BIN="${BIN:-bin/codeplan}"
LIBDIR="${LIBDIR:-lib/codeplan}"
IMAGE="${IMAGE:-codeplan}"
CONTEXT="${CONTEXT:-build/image}"
EXTRA_TAG="${EXTRA_TAG-latest}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
if [ -z "${LLAMA_COMMIT:-}" ]; then
  mod="$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)"
  LLAMA_COMMIT="$(sed -n 's/^FETCH_HEAD=//p' "$mod/Makefile.sync" 2>/dev/null || true)"
fi
LLAMA_COMMIT="${LLAMA_COMMIT:-unknown}"
TOOL="${CONTAINER_TOOL:-}"
if [ -z "$TOOL" ]; then
  if command -v podman >/dev/null; then TOOL=podman
  elif command -v docker >/dev/null; then TOOL=docker
  else echo "image: needs podman (apt-get install podman) or docker" >&2; exit 2
  fi
fi
[ -x "$BIN" ] || { echo "image: $BIN not found: run make build first" >&2; exit 2; }

die() { echo "image: $*" >&2; exit 1; }

# deps FILE: the absolute paths of the libraries FILE loads, one a line, as
# ldd resolves them (the loader included, the kernel's vDSO left out).
# "not found" lines are printed as "MISSING name".
deps() {
  ldd "$1" | awk '
    $2 == "=>" && $3 == "not" { print "MISSING " $1; next }
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }'
}

# put SRC DEST: copy SRC (following links) to DEST under the image root.
put() {
  mkdir -p "$ROOT$(dirname "$2")"
  cp -L "$1" "$ROOT$2"
}

ROOT="$CONTEXT/rootfs"
rm -rf "$CONTEXT"
mkdir -p "$ROOT/tmp"
chmod 1777 "$ROOT/tmp" # tiny test model cache and temp files; no other writable place
put "$BIN" /bin/codeplan
while read -r lib; do
  case "$lib" in MISSING*) die "ldd $BIN: ${lib#MISSING } not found";; esac
  put "$lib" "$lib"
done < <(deps "$BIN")

env_lines=()
if compgen -G "$LIBDIR/*.so*" >/dev/null; then
  # A GPU backend: its libraries go to /lib/codeplan (found next to the
  # binary's folder, see --backend-dir). What they load from outside the
  # system folders (the CUDA runtime: cudart, cublas, cublasLt) goes there
  # too, on LD_LIBRARY_PATH, wherever the build machine had it.
  mkdir -p "$ROOT/lib/codeplan"
  for f in "$LIBDIR"/*.so*; do
    cp -L "$f" "$ROOT/lib/codeplan/$(basename "$f")"
  done
  for f in "$LIBDIR"/*.so*; do
    while read -r lib; do
      case "$lib" in
        MISSING\ libcuda.so*|MISSING\ libnvidia-*) continue ;; # the driver: from the host
        MISSING*)
          name="${lib#MISSING }"
          [ -e "$LIBDIR/$name" ] && continue # a sibling in lib/codeplan
          die "ldd $f: $name not found (is the CUDA toolkit's lib64 on LD_LIBRARY_PATH?)" ;;
        */libcuda.so*|*/libnvidia-*) continue ;;
        /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) put "$lib" "$lib" ;;
        *) [ -e "$ROOT/lib/codeplan/$(basename "$lib")" ] || put "$lib" "/lib/codeplan/$(basename "$lib")" ;;
      esac
    done < <(deps "$f")
  done
  env_lines=("ENV LD_LIBRARY_PATH=/lib/codeplan"
    "ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility")
fi

{
  echo "FROM scratch"
  echo "COPY rootfs/ /"
  for l in "${env_lines[@]}"; do echo "$l"; done
  echo "LABEL org.opencontainers.image.title=codeplan \\"
  echo "      org.opencontainers.image.version=\"$VERSION\" \\"
  echo "      dev.codeplan.llama-cpp.commit=\"$LLAMA_COMMIT\""
  echo 'ENTRYPOINT ["/bin/codeplan"]'
} > "$CONTEXT/Containerfile"

tags=(--tag "$IMAGE:$VERSION")
[ -n "$EXTRA_TAG" ] && tags+=(--tag "$IMAGE:$EXTRA_TAG")
"$TOOL" build "${tags[@]}" --file "$CONTEXT/Containerfile" "$CONTEXT"
echo "built $IMAGE:$VERSION ($(du -sh "$ROOT" | cut -f1) of files) with $TOOL; run e.g.: $TOOL run --rm $IMAGE:$VERSION info --system"
