package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
	"github.com/codeplan-dev/codeplan/llama/tiny"
)

// TestResumeRefusesOtherWeights: the campaign's repro. A model file with the
// same name but other weights (one attention matrix changed, as a LoRA
// merge does) resumed silently into the rows of the first, because the
// fingerprint read only output_norm. It is now refused, naming the
// fingerprints.
func TestResumeRefusesOtherWeights(t *testing.T) {
	dir := t.TempDir()
	src, err := tiny.Path(tiny.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model.gguf")
	in, _ := os.Open(src)
	out, _ := os.Create(model)
	io.Copy(out, in)
	in.Close()
	out.Close()
	corpus := writeCorpus(t, dir, 2)
	res := filepath.Join(dir, "gen.jsonl")
	args := []string{"-q", "generate", model, "--input", corpus, "--output", res, "--threads", "1", "--max-tokens", "4", "--max-plan-tokens", "4"}
	if code, _, stderr := runCLI(t, args...); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	before, _ := os.ReadFile(res)
	g, err := gguf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := g.Tensor("blk.1.attn_q.weight")
	g.Close()
	f, _ := os.OpenFile(model, os.O_RDWR, 0)
	b := make([]byte, 1)
	f.ReadAt(b, int64(q.FileOffset+q.Size/2))
	b[0] ^= 1
	f.WriteAt(b, int64(q.FileOffset+q.Size/2))
	f.Close()
	code, _, stderr := runCLI(t, append(args, "--limit", "0")...)
	if code != 2 || !strings.Contains(stderr, "model_fingerprint=s3x4k:") || crashTrace(stderr) {
		t.Errorf("rerun on other weights: exit %d\n%s", code, stderr)
	}
	if after, _ := os.ReadFile(res); string(after) != string(before) {
		t.Error("the refused rerun changed the rows")
	}
}
