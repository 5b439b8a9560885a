# codeplan build. `make` builds bin/codeplan; `make test` runs every test.
#
# llama.cpp and ggml are compiled by cgo from the pinned Go module
# github.com/ollama/ollama. The first build takes ~7 minutes on 2 cores;
# later builds are cached by Go as long as the flags below do not change.

GO        ?= go
# ggml's CPU backend gets no -march from its own cgo flags: without these it
# runs several times slower. Override e.g. CPU_FLAGS="-O3 -mavx2 -mfma" to
# build a binary for other machines.
CPU_FLAGS ?= -O3 -march=native
export CGO_ENABLED  := 1
export CGO_CFLAGS   := $(CPU_FLAGS)
export CGO_CXXFLAGS := $(CPU_FLAGS)

OLLAMA_MOD  := github.com/ollama/ollama
HEADERS     := third_party/llama.cpp/include/llama.h third_party/ggml/include/ggml.h
BIN         := bin/codeplan
TEST_FLAGS  ?= -timeout 45m
CUDA_BUILD  ?= build/cuda
# --version and eval reports name the build: `git describe` (with -dirty when
# the tree has uncommitted changes) and the commit, stamped at link time.
VERSION_PKG := github.com/codeplan-dev/codeplan/internal/version
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT      ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS     := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)
CUDA_ARCHS  ?= native
LIBDIR      := lib/codeplan

.PHONY: all build test test-invariants bench demo mini headers cuda cuda-lib metal image clean vet fmt gpu-bundle fuzz

all: build

# third_party/ links to the C headers inside the module cache (git-ignored).
headers: $(HEADERS)
$(HEADERS): go.mod
	$(GO) mod download $(OLLAMA_MOD)
	@mkdir -p third_party
	@dir=$$($(GO) list -m -f '{{.Dir}}' $(OLLAMA_MOD)) && \
	  ln -sfn "$$dir/llama/llama.cpp" third_party/llama.cpp && \
	  ln -sfn "$$dir/ml/backend/ggml/ggml" third_party/ggml
	@touch $(HEADERS) 2>/dev/null || true

build: headers
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/codeplan

test: headers
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

# Test builds with finalizers that fail the run when a llama Context,
# Sampler or Batch is garbage-collected without Close (llama/leak_invariants.go).
test-invariants: headers
	$(GO) test $(TEST_FLAGS) -tags invariants ./llama/ ./llama/engine/ ./inference/ ./llama/loglik/ ./server/ ./chat/ ./local/

# The fuzz targets that build without cgo instrumentation of llama.cpp
# (CI runs this after the tests). The cgo ones (llama: FuzzLoadModel,
# FuzzLoadAdapter, FuzzGrammar; engine: FuzzHostilePrompt) run their seeds
# in every `go test`; fuzz them with
#   go test -run '^$$' -fuzz=FuzzHostilePrompt -fuzztime=60s ./llama/engine/
# Budgets are execution counts (about 10 s each on our 2-core machine), not
# durations: a duration races Go's fuzzing coordinator at its deadline and
# fails with a bare "context deadline exceeded" and no failing input on a
# loaded machine (golang/go#75804; seen in our CI run). FUZZTIME=30s (or
# 1000000x) overrides all four.
FUZZTIME ?=
fuzz: headers
	$(GO) test -run '^$$' -fuzz=FuzzOpenRows -fuzztime=$(or $(FUZZTIME),3000x) ./dataset/
	$(GO) test -run '^$$' -fuzz=FuzzRead -fuzztime=$(or $(FUZZTIME),300000x) ./llama/gguf/
	$(GO) test -run '^$$' -fuzz=FuzzFindCode -fuzztime=$(or $(FUZZTIME),50000x) ./planner/
	$(GO) test -run '^$$' -fuzz=FuzzRead -fuzztime=$(or $(FUZZTIME),200000x) ./safetensors/

bench: headers
	$(GO) test -run '^$$' -bench . -benchtime 3x ./llama/ ./llama/engine/

# The README's main command: extract plans with the paper's template from rows
# of the miniature's domain (multi-hop and branching questions about people),
# with the 2.5 MB extractor trained for it (examples/mini/README.md; no
# download), and compare them with the rows' reference plans. One thread: the
# model is too small for a second thread to pay off. DEMO_MODEL=tiny runs the
# same pipeline on the built-in random-weight model instead (gibberish plans,
# all rejected).
DEMO_DIR   ?= /tmp/codeplan-demo
DEMO_MODEL ?= examples/mini/extractor.gguf
DEMO_ROWS  ?= examples/mini/demo.jsonl
demo: build
	@rm -rf $(DEMO_DIR)
	./$(BIN) extract $(DEMO_MODEL) --input $(DEMO_ROWS) --template paper --reference-field plan --output $(DEMO_DIR)/plans.jsonl --parallel 8 --max-plan-tokens 256 --threads 1

# The CodePlan miniature (issues 12, 23): a tokenizer trained on the rows, one
# init, four arms (direct, nlplan, codeplan, control) trained the same way,
# evaluated on held-out synthetic rows and compared item by item; see
# scripts/mini-replication.sh for the settings (environment variables).
# Resumable: run it again to finish an interrupted run. The mechanics are
# tested at toy size by TestMiniReplicationScript in `make test`.
MINI_OUT ?= mini-run
mini: build
	CODEPLAN=./$(BIN) nice -n 10 scripts/mini-replication.sh $(MINI_OUT)

vet: headers
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# GPU: build ggml's CUDA backend as a shared library with CMake from the same
# module, then copy it next to the binary; codeplan loads it at run time when
# --gpu or --ngl is given.
cuda: build cuda-lib

# cuda-lib is the CMake part alone. It needs no Go when OLLAMA_DIR names the
# module's source (the GPU bundle's layout: make -C gpu-bundle cuda-lib
# OLLAMA_DIR=ollama). Vulkan is kept out so a machine that happens to have its
# SDK does not look for the Vulkan sources, which the bundle leaves out.
OLLAMA_DIR ?=
cuda-lib:
	@command -v cmake >/dev/null || { echo "make cuda needs cmake (apt-get install cmake)" >&2; exit 2; }
	@command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "make cuda needs the CUDA toolkit (nvcc on PATH or in /usr/local/cuda/bin)" >&2; exit 2; }
	@dir="$(OLLAMA_DIR)"; [ -n "$$dir" ] || dir=$$($(GO) list -m -f '{{.Dir}}' $(OLLAMA_MOD)); \
	  gen=; command -v ninja >/dev/null && gen="-G Ninja"; \
	  PATH="$$PATH:/usr/local/cuda/bin" cmake -S "$$dir" -B $(CUDA_BUILD) $$gen -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS) -DCMAKE_DISABLE_FIND_PACKAGE_Vulkan=ON && \
	  PATH="$$PATH:/usr/local/cuda/bin" cmake --build $(CUDA_BUILD) --target ggml-cuda -j $$(nproc)
	@mkdir -p $(LIBDIR)
	cp -a $(CUDA_BUILD)/lib/ollama/*.so* $(LIBDIR)/
	@echo "CUDA backend in $(LIBDIR); run e.g. ./$(BIN) chat MODEL --gpu"

# gpu-bundle: everything the GPU device machine (no Go, no network) needs, in
# one git-ignored folder: bin/codeplan built here for any x86-64-v3 CPU (not
# -march=native: the device's CPU is another), the module's CMake files and
# ggml sources (no other backends, no Go files), this Makefile,
# scripts/gpu-check.sh and, when fetched, the Llama-3 tokenizer (gzipped).
# The device takes at most 64 MiB of working tree; the bundle must stay under 60 MB.
GPU_BUNDLE    ?= gpu-bundle
GPU_CPU_FLAGS ?= -O3 -march=x86-64-v3
GPU_BUNDLE_MAX_BYTES := 60000000
gpu-bundle: headers
	@rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/bin $(GPU_BUNDLE)/scripts $(GPU_BUNDLE)/ollama/ml/backend/ggml
	CGO_CFLAGS="$(GPU_CPU_FLAGS)" CGO_CXXFLAGS="$(GPU_CPU_FLAGS)" $(GO) build -ldflags "-s -w $(LDFLAGS)" -o $(GPU_BUNDLE)/bin/codeplan ./cmd/codeplan
	@dir=$$($(GO) list -m -f '{{.Dir}}' $(OLLAMA_MOD)) && \
	  cp "$$dir/CMakeLists.txt" $(GPU_BUNDLE)/ollama/ && \
	  cp -r "$$dir/ml/backend/ggml/ggml" $(GPU_BUNDLE)/ollama/ml/backend/ggml/ && chmod -R u+w $(GPU_BUNDLE)/ollama && \
	  rm -rf $(GPU_BUNDLE)/ollama/ml/backend/ggml/ggml/src/ggml-metal $(GPU_BUNDLE)/ollama/ml/backend/ggml/ggml/src/ggml-vulkan \
	         $(GPU_BUNDLE)/ollama/ml/backend/ggml/ggml/src/ggml-hip && \
	  find $(GPU_BUNDLE)/ollama -name '*.go' -delete
	cp Makefile $(GPU_BUNDLE)/
	cp scripts/gpu-check.sh scripts/gpu-check-peft.py $(GPU_BUNDLE)/scripts/
	@if [ -f .cache/tokenizers/llama3/models/tokenizer.json ]; then \
	  mkdir -p $(GPU_BUNDLE)/tokenizers/llama3/models && \
	  for f in tokenizer.json tokenizer_config.json; do gzip -9c .cache/tokenizers/llama3/models/$$f > $(GPU_BUNDLE)/tokenizers/llama3/models/$$f.gz; done; \
	else echo "gpu-bundle: no Llama-3 tokenizer (scripts/fetch-tokenizers.sh); the device check will use byte vocabularies" >&2; fi
	@size=$$(du -sb $(GPU_BUNDLE) | cut -f1); echo "$(GPU_BUNDLE): $$size bytes"; \
	  if [ $$size -gt $(GPU_BUNDLE_MAX_BYTES) ]; then echo "gpu-bundle: $$size bytes, over the $(GPU_BUNDLE_MAX_BYTES) the device can take" >&2; exit 1; fi

# OCI image FROM scratch with podman (or docker): bin/codeplan, the shared
# libraries ldd lists, and after `make cuda` the CUDA backend with its runtime
# libraries. No base image is downloaded. Tagged $(IMAGE):VERSION and :latest.
IMAGE ?= codeplan
image: build
	IMAGE=$(IMAGE) BIN=$(BIN) LIBDIR=$(LIBDIR) scripts/image.sh

# macOS: on darwin/arm64 the module's cgo compiles ggml's Metal backend (with
# its shader library embedded) into the binary, so there is nothing to load.
metal:
	@if [ "$$(uname -s)/$$(uname -m)" != "Darwin/arm64" ]; then \
	  echo "make metal needs macOS on Apple Silicon (this is $$(uname -s)/$$(uname -m)); use make cuda for NVIDIA GPUs" >&2; exit 2; fi
	$(MAKE) build
	@echo "Metal is built in: run e.g. ./$(BIN) chat MODEL --gpu"

clean:
	rm -rf bin $(CUDA_BUILD) $(LIBDIR) third_party $(GPU_BUNDLE)
	$(GO) clean -testcache
