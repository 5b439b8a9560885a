package layout

import (
	"bufio"
	"bytes"
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
	"llama/gguf": 0, "planner": 0, "dataset": 0, "remote": 0,
	"evaluate/answer": 0, "evaluate/report": 0, "internal/logging": 0, "internal/layout": 0, "tokenizer": 0,
	// 1
	"llama": 1, "llama/hfvocab": 1, "llama/tiny": 1, "evaluate/bench": 1, "internal/progress": 1,
	// 2
	"llama/randmodel": 2, "loglik": 2, "chattemplate": 2, "internal/version": 2, "evaluate/synth": 2, "internal/pipeline": 2, "chat": 2,
	// 3
	"engine": 3, "internal/testmodel": 3, "miniature": 3,
	// 4
	"inference": 4,
	// 5: one job each, on inference or the engine.
	"extract": 5, "generate": 5, "finetune": 5, "server": 5,
	// 6
	"evaluate": 6,
	// 7: above evaluate.
	"evaluate/replication": 7,
	// 8: the command.
	"cmd/codeplan": 8,
}

func TestImportsGoDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
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
