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
	"answer": 0, "stats": 0, "internal/logging": 0, "internal/layout": 0, "safetensors": 0, "internal/version": 0,
	// 1: the cgo-free contract of a model runtime; pure-Go formats and text.
	"llama/lm": 1, "llama/hfvocab": 1, "llama/tiny": 1, "planner": 1, "benchdata": 1, "internal/progress": 1, "remote": 1,
	"hf": 1, "tokenizer": 1,
	// 2: the cgo binding.
	"llama": 2, "llama/randmodel": 2, "synth": 2, "internal/pipeline": 2, "chat": 2,
	// 3: runtimes on a loaded model.
	"llama/loglik": 3, "llama/chattemplate": 3, "llama/testmodel": 3, "miniature": 3,
	// 4
	"llama/engine": 4, "inference": 4, "evaluate/evaltest": 4,
	// 5: one job each, on the llama/lm contract.
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

// linksLlama says which packages may depend on the cgo binding (package
// llama), directly or through another package: everything under llama/
// (the binding, and the runtimes that drive it: llama/engine, llama/loglik,
// llama/chattemplate, and the test model llama/testmodel); local, the
// package that opens models and hands the jobs what runs on them; and
// cmd/codeplan, which genuinely must: it wires everything together, its
// model commands (info, devices, model tiny/init, bench) call the binding,
// and it loads the model that finetune trains (finetune drives it through
// lm.Trainer and finetune.Model, which *llama.Model implements).
//
// Every other package (the jobs, finetune, the server, chat, the
// reports...) is written against llama/lm, llama/sampling and
// llama/message and builds with CGO_ENABLED=0: TestJobsDoNotLinkLlama
// enforces it.
func linksLlama(pkg string) bool {
	return pkg == "llama" || strings.HasPrefix(pkg, "llama/") || pkg == "local" || pkg == "cmd/codeplan"
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

// goList runs go list with args and returns its output, skipping the test
// when the go tool cannot run (outside CI).
func goList(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go %s: %v (CI=true: the layout test must not skip)", strings.Join(args, " "), err)
		}
		t.Skipf("go %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TestJobsDoNotLinkLlama checks the cgo boundary: only package llama has
// cgo files, and, transitively, no package
// outside linksLlama depends on the binding through any chain of imports
// (a job that imported llama/engine, say, would link llama.cpp through it).
// Outside -short it also builds those packages with CGO_ENABLED=0, which
// fails if anything of theirs needs cgo at all.
func TestJobsDoNotLinkLlama(t *testing.T) {
	out := goList(t, nil, "list", "-f", "{{.ImportPath}} {{len .CgoFiles}} {{join .Deps \" \"}}", module+"...")
	var free []string
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		seen++
		if f[1] != "0" && pkg != "llama" {
			t.Errorf("%s has cgo files: only the binding, package llama, calls C", pkg)
		}
		if linksLlama(pkg) {
			continue
		}
		free = append(free, f[0])
		for _, dep := range f[2:] {
			if dep == module+"llama" {
				t.Errorf("%s depends on the cgo binding llama (through its imports): write it against llama/lm, llama/sampling and llama/message, and leave llama/engine, llama/loglik and llama/chattemplate to local", pkg)
			}
		}
	}
	if seen < 20 || len(free) < 15 {
		t.Fatalf("go list found only %d packages, %d cgo-free", seen, len(free))
	}
	if testing.Short() {
		return
	}
	build := exec.Command("go", append([]string{"build"}, free...)...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build of the packages outside the model runtime: %v\n%s", err, msg)
	}
}
