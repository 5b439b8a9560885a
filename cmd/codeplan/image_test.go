package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// What `make image` builds, as the Kubernetes Job names it.
const (
	imageName   = "codeplan"
	imageBinary = "/bin/codeplan"
)

// lddPaths returns the absolute paths of the libraries ldd lists for bin.
func lddPaths(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			paths = append(paths, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			paths = append(paths, f[0])
		}
	}
	if len(paths) == 0 {
		t.Fatalf("ldd %s listed no libraries:\n%s", bin, out)
	}
	return paths
}

// imageFiles reads an image saved as a docker archive and returns the size
// of every regular file in its layers, by absolute path.
func imageFiles(t *testing.T, archive string) map[string]int64 {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			entries[h.Name], _ = io.ReadAll(tr)
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v %s", err, entries["manifest.json"])
	}
	files := map[string]int64{}
	for _, layer := range manifest[0].Layers {
		lr := tar.NewReader(bytes.NewReader(entries[layer]))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", layer, err)
			}
			if h.Typeflag != tar.TypeDir {
				files[path.Clean("/"+h.Name)] = h.Size
			}
		}
	}
	return files
}

// TestImage builds the CPU image with scripts/image.sh (as `make image`
// does) and checks that it holds exactly the binary and the libraries ldd
// lists for it, that it is no bigger than those files, and its labels. As
// root it also runs the binary chrooted into the image's files, which shows
// that nothing else is needed.
func TestImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed (apt-get install podman)")
	}
	if testing.Short() {
		t.Skip("builds the binary and an image")
	}
	if out, err := exec.Command(podman, "info").CombinedOutput(); err != nil {
		t.Skipf("podman cannot work here: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "codeplan")
	// The same cgo flags as this test binary's, so only linking happens.
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	version := fmt.Sprintf("test-%d", os.Getpid())
	tag := "codeplan-test:" + version
	ctxDir := filepath.Join(dir, "context")
	script := exec.Command("scripts/image.sh")
	script.Dir = "../.."
	script.Env = append(os.Environ(), "BIN="+bin, "LIBDIR="+filepath.Join(dir, "no-gpu-backend"), "IMAGE=codeplan-test",
		"VERSION="+version, "EXTRA_TAG=", "CONTEXT="+ctxDir, "CONTAINER_TOOL=podman")
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })

	out, err := exec.Command(podman, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var inspect []struct {
		Size   int64
		Labels map[string]string
		Config struct{ Entrypoint []string }
	}
	if err := json.Unmarshal(out, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	img := inspect[0]
	commit, _ := exec.Command("bash", "-c", `sed -n 's/^FETCH_HEAD=//p' "$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)/Makefile.sync"`).Output()
	if want := strings.TrimSpace(string(commit)); want == "" || img.Labels["dev.codeplan.llama-cpp.commit"] != want {
		t.Errorf("llama.cpp commit label %q, want %q", img.Labels["dev.codeplan.llama-cpp.commit"], want)
	}
	if img.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("version label %q, want %q", img.Labels["org.opencontainers.image.version"], version)
	}
	if len(img.Config.Entrypoint) != 1 || img.Config.Entrypoint[0] != imageBinary {
		t.Errorf("entrypoint %v", img.Config.Entrypoint)
	}

	archive := filepath.Join(dir, "image.tar")
	if out, err := exec.Command(podman, "save", "--format", "docker-archive", "-o", archive, tag).CombinedOutput(); err != nil {
		t.Fatalf("podman save: %v\n%s", err, out)
	}
	got := imageFiles(t, archive)
	want := map[string]string{imageBinary: bin}
	for _, p := range lddPaths(t, bin) {
		want[p] = p
	}
	var total int64
	for dst, src := range want {
		st, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
		if size, ok := got[dst]; !ok {
			t.Errorf("image lacks %s", dst)
		} else if size != st.Size() {
			t.Errorf("%s is %d bytes in the image, %d on disk", dst, size, st.Size())
		}
	}
	var extra []string
	for p := range got {
		if _, ok := want[p]; !ok {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("image holds files ldd does not list: %v", extra)
	}
	// No base image: the image is its files plus metadata.
	t.Logf("image %d bytes, its %d files %d bytes", img.Size, len(want), total)
	if img.Size > total+1<<20 {
		t.Errorf("image is %d bytes, more than its files (%d bytes) + 1 MiB", img.Size, total)
	}

	if os.Geteuid() != 0 {
		return
	}
	root := filepath.Join(ctxDir, "rootfs")
	run := exec.Command("chroot", root, imageBinary, "-q", "model", "tiny", "--print-path")
	run.Env = []string{"HOME=/tmp"}
	if out, err := run.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Operation not permitted") {
			t.Logf("chroot not permitted here: %s", out)
			return
		}
		t.Errorf("codeplan chrooted into the image's files: %v\n%s", err, out)
	} else if !strings.HasPrefix(strings.TrimSpace(string(out)), "/tmp/") {
		t.Errorf("tiny model path %q, want one under /tmp", out)
	}
}

// TestImageGPUBackendLayout runs scripts/image.sh on a stand-in GPU backend
// (no CUDA toolkit or GPU needed): lib/codeplan goes to /lib/codeplan with
// the runtime library it links from outside the system folders, the driver
// (libcuda) stays out for the host to provide, and a library that cannot be
// found stops the build with its name.
func TestImageGPUBackendLayout(t *testing.T) {
	for _, tool := range []string{"gcc", "ldd", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	dir := t.TempDir()
	cuda, stub, libdir := filepath.Join(dir, "cuda", "lib64"), filepath.Join(dir, "stub"), filepath.Join(dir, "lib")
	for _, d := range []string{cuda, stub, libdir} {
		os.MkdirAll(d, 0o755)
	}
	src := filepath.Join(dir, "f.c")
	os.WriteFile(src, []byte("int f(void) { return 0; }\n"), 0o644)
	gcc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("gcc", append([]string{"-shared", "-fPIC", "-o"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	gcc(filepath.Join(cuda, "libcudart.so.12"), src, "-Wl,-soname,libcudart.so.12")
	gcc(filepath.Join(stub, "libcuda.so.1"), src, "-Wl,-soname,libcuda.so.1")
	gcc(filepath.Join(stub, "libcublas.so.12"), src, "-Wl,-soname,libcublas.so.12")
	gcc(filepath.Join(libdir, "libggml-base.so"), src, "-Wl,-soname,libggml-base.so")
	backend := func(extra ...string) {
		t.Helper()
		gcc(append([]string{filepath.Join(libdir, "libggml-cuda.so"), src, "-Wl,--no-as-needed",
			"-L" + libdir, "-lggml-base", "-L" + cuda, "-l:libcudart.so.12", "-L" + stub, "-l:libcuda.so.1",
			"-Wl,-rpath," + cuda}, extra...)...)
	}
	image := func() (string, error) {
		cmd := exec.Command("scripts/image.sh")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "BIN=/bin/true", "LIBDIR="+libdir, "CONTEXT="+filepath.Join(dir, "ctx"),
			"CONTAINER_TOOL=true", "VERSION=test", "LLAMA_COMMIT=test")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// libggml-base.so is a sibling (found through the backend folder), so
	// only the driver is missing: that is the host's to provide.
	backend()
	if out, err := image(); err != nil {
		t.Fatalf("image.sh: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "ctx", "rootfs")
	for _, p := range []string{"/lib/codeplan/libggml-cuda.so", "/lib/codeplan/libggml-base.so", "/lib/codeplan/libcudart.so.12", "/bin/codeplan"} {
		if _, err := os.Stat(root + p); err != nil {
			t.Errorf("image lacks %s", p)
		}
	}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), "libcuda.so") {
			t.Errorf("the driver library is in the image: %s", p)
		}
		return nil
	})
	cf, _ := os.ReadFile(filepath.Join(dir, "ctx", "Containerfile"))
	if !strings.Contains(string(cf), "ENV LD_LIBRARY_PATH=/lib/codeplan") || !strings.Contains(string(cf), "FROM scratch") {
		t.Errorf("Containerfile:\n%s", cf)
	}

	// A runtime library that is nowhere to be found stops the build.
	backend("-l:libcublas.so.12")
	os.Remove(filepath.Join(stub, "libcublas.so.12"))
	if out, err := image(); err == nil || !strings.Contains(out, "libcublas.so.12 not found") {
		t.Errorf("missing libcublas: %v\n%s", err, out)
	}
}
