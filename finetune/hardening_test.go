package finetune

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/codeplan-dev/codeplan/llama/gguf"
)

// flipByte changes one byte of tensor name's data in the GGUF file at
// path, at offset off within the tensor.
func flipByte(t *testing.T, path, name string, off uint64) {
	t.Helper()
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := g.Tensor(name)
	g.Close()
	if !ok || off >= ti.Size {
		t.Fatalf("%s: no tensor %s of more than %d bytes", path, name, off)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, int64(ti.FileOffset+off))
	b[0] ^= 0x01 // a low mantissa bit: a plausible value, not a NaN
	if _, err := f.WriteAt(b, int64(ti.FileOffset+off)); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

// TestContentFingerprint: two models of one shape whose weights differ
// outside output_norm (as after merging a LoRA adapter) had the same
// fingerprint, so a run resumed into the other's rows. The content
// fingerprint samples every tensor and tells them apart; it names its
// method.
func TestContentFingerprint(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", "tiny.gguf"), filepath.Join(dir, "b", "tiny.gguf")
	os.MkdirAll(filepath.Dir(a), 0o755)
	os.MkdirAll(filepath.Dir(b), 0o755)
	copyFile(t, tinyPath, a)
	copyFile(t, tinyPath, b)
	g, err := gguf.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := g.Tensor("blk.0.attn_q.weight")
	g.Close()
	flipByte(t, b, q.Name, q.Size/2)
	ba, err := InspectBase(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := InspectBase(b)
	if err != nil {
		t.Fatal(err)
	}
	if ba.Fingerprint != bb.Fingerprint {
		t.Logf("the header fingerprint tells them apart too (%s, %s)", ba.Fingerprint, bb.Fingerprint)
	}
	if ba.ContentFingerprint == bb.ContentFingerprint {
		t.Errorf("other weights, same content fingerprint %s", ba.ContentFingerprint)
	}
	if !strings.HasPrefix(ba.ContentFingerprint, ContentFingerprintMethod+":") || len(ba.ContentFingerprint) != len(ContentFingerprintMethod)+1+32 {
		t.Errorf("content fingerprint %q does not name its method", ba.ContentFingerprint)
	}
	again, _ := InspectBase(a)
	if again.ContentFingerprint != ba.ContentFingerprint {
		t.Error("the content fingerprint is not stable")
	}
}

// TestCheckpointChecksum: a checkpoint whose tensor bytes were damaged was
// resumed, and the run failed steps later blaming the learning rate
// ("gradient norm is NaN; lower --lr"). The checksum written with it finds
// the damage on resume and names the file.
func TestCheckpointChecksum(t *testing.T) {
	m := loadModel(t, tinyPath)
	cfg := quickConfig(t, t.TempDir())
	cfg.Epochs = 4
	cfg2, _, err := runInterrupted(t, m, cfg, "adapter.gguf", 3)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	ck := cfg2.CheckpointPath()
	g, err := gguf.Open(ck)
	if err != nil {
		t.Fatal(err)
	}
	sum, ok := g.String(keyCkptChecksum)
	ti := g.Tensors()[0]
	g.Close()
	if !ok || !strings.HasPrefix(sum, "sha256:") {
		t.Fatalf("checkpoint records no checksum (%q)", sum)
	}
	flipByte(t, ck, ti.Name, ti.Size/2)
	cfg2.OnStep, cfg2.Resume = nil, true
	_, err = Run(context.Background(), m, cfg2)
	if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), ck) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("resume from a damaged checkpoint: %v", err)
	}
}

// BenchmarkInspectBase times reading a model's header and fingerprints
// (header-only and content). CODEPLAN_FINGERPRINT_MODEL names the GGUF
// (e.g. `codeplan model random --shape llama3-8b --type q4_0`); with
// CODEPLAN_FINGERPRINT_COLD=1 the file's pages are dropped from the page
// cache before each run (posix_fadvise), so every read goes to the disk.
func BenchmarkInspectBase(b *testing.B) {
	path := os.Getenv("CODEPLAN_FINGERPRINT_MODEL")
	if path == "" {
		b.Skip("set CODEPLAN_FINGERPRINT_MODEL to a GGUF file")
	}
	cold := os.Getenv("CODEPLAN_FINGERPRINT_COLD") == "1"
	for _, content := range []bool{false, true} {
		b.Run(map[bool]string{false: "header", true: "header+content"}[content], func(b *testing.B) {
			benchInspect(b, path, cold, content)
		})
	}
}

func benchInspect(b *testing.B, path string, cold, content bool) {
	for i := 0; i < b.N; i++ {
		if cold {
			b.StopTimer()
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			const fadvDontNeed = 4 // POSIX_FADV_DONTNEED
			syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0)
			f.Close()
			b.StartTimer()
		}
		base, err := inspectBase(path, content)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 && content {
			b.Logf("%d tensors, content fingerprint %s", len(base.tensors), base.ContentFingerprint)
		}
	}
}
