package layout

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/codeplan-dev/codeplan/"

// layers gives every package of the module its layer: a package may import
// only packages of lower layers. Keep it in step with README.md's Design
// table.
var layers = map[string]int{
	// 0: no imports of ours.
	"llama/gguf": 0, "llama/sampling": 0, "llama/message": 0, "dataset": 0,
	"answer": 0, "stats": 0, "internal/logging": 0, "internal/layout": 0, "safetensors": 0,
	// 1
	"llama": 1, "llama/hfvocab": 1, "llama/tiny": 1, "planner": 1, "benchdata": 1, "internal/progress": 1, "remote": 1,
	"hf": 1, "tokenizer": 1,
	// 2
	"llama/randmodel": 2, "loglik": 2, "chattemplate": 2, "internal/version": 2, "synth": 2, "internal/pipeline": 2, "chat": 2,
	// 3
	"engine": 3, "internal/testmodel": 3, "evaluate/evaltest": 4, "miniature": 3,
	// 4
	"inference": 4,
	// 5: one job each, on inference or the engine.
	"extract": 5, "generate": 5, "finetune": 5, "server": 5, "perplexity": 5,
	// 6: the eval job; local models as jobs need them.
	"evaluate": 6, "local": 6,
	// 7: reports built from eval's results.
	"report": 7,
	// 8: the miniature's combined report.
	"report/replication": 8,
	// 9: the command.
	"cmd/codeplan": 9,
}

// cgoImporters are the packages that may import the cgo binding (package
// llama) itself: the runtime built on a loaded model (engine, loglik,
// chattemplate, finetune's trainer), the package that opens models
// (local), the build's version (the llama.cpp commit), the test model, and
// cmd's model commands (info, model, bench). Everything else chooses
// sampling and builds chat messages with the cgo-free llama/sampling and
// llama/message.
var cgoImporters = map[string]bool{
	"engine": true, "loglik": true, "chattemplate": true, "finetune": true, "local": true,
	"internal/version": true, "internal/testmodel": true, "cmd/codeplan": true,
}

func TestImportsGoDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
		// Without the go tool the layering cannot be checked; in CI
		// (CI=true) that is a failure, not a skip.
		if os.Getenv("CI") == "true" {
			t.Fatalf("go list: %v (CI=true: the layout test must not skip)", err)
		}
		t.Skipf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	seen := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		layer, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s has no layer: add it to layers and to the README's Design table", pkg)
			continue
		}
		seen++
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if dep == "llama" && !strings.HasPrefix(pkg, "llama") && !cgoImporters[pkg] {
				t.Errorf("%s imports llama (cgo): use llama/sampling and llama/message, or go through local", pkg)
			}
			if strings.HasPrefix(pkg, "llama") && !strings.HasPrefix(dep, "llama") {
				t.Errorf("%s imports %s: llama/ must import nothing of ours outside llama/", pkg, dep)
			}
			if dl, ok := layers[dep]; ok && dl >= layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must go down", pkg, layer, dep, dl)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list found only %d packages", seen)
	}
}
