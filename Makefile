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
CUDA_ARCHS  ?= native
LIBDIR      := lib/codeplan

.PHONY: all build test bench demo mini headers cuda metal image clean vet fmt

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
	$(GO) build -o $(BIN) ./cmd/codeplan

test: headers
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

bench: headers
	$(GO) test -run '^$$' -bench . -benchtime 3x ./llama/ ./engine/

# The README's main command: extract plans from the shipped sample corpus with
# the built-in tiny model (no download). One thread: the tiny model is too
# small for a second thread to pay off.
DEMO_DIR ?= /tmp/codeplan-demo
demo: build
	@rm -rf $(DEMO_DIR)
	./$(BIN) extract tiny --input examples/sample.jsonl --output $(DEMO_DIR)/plans.jsonl --parallel 4 --max-plan-tokens 128 --threads 1

# The CodePlan miniature (issue 12): one init, three models (direct, nlplan,
# codeplan) trained the same way, evaluated on held-out synthetic rows; see
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
cuda: build
	@command -v cmake >/dev/null || { echo "make cuda needs cmake (apt-get install cmake)" >&2; exit 2; }
	@command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "make cuda needs the CUDA toolkit (nvcc on PATH or in /usr/local/cuda/bin)" >&2; exit 2; }
	@dir=$$($(GO) list -m -f '{{.Dir}}' $(OLLAMA_MOD)) && \
	  PATH="$$PATH:/usr/local/cuda/bin" cmake -S "$$dir" -B $(CUDA_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS) && \
	  cmake --build $(CUDA_BUILD) --target ggml-cuda -j $$(nproc)
	@mkdir -p $(LIBDIR)
	cp -a $(CUDA_BUILD)/lib/ollama/*.so* $(LIBDIR)/
	@echo "CUDA backend in $(LIBDIR); run e.g. ./$(BIN) chat MODEL --gpu"

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
	rm -rf bin $(CUDA_BUILD) $(LIBDIR) third_party
	$(GO) clean -testcache
