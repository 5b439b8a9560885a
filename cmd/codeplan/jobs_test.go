package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/codeplan-dev/codeplan/dataset"
)

// The job files the README points to, from this package's folder.
const (
	slurmScript = "../../scripts/slurm-extract.sbatch"
	k8sJob      = "../../scripts/k8s-extract-job.yaml"
	k8sServe    = "../../scripts/k8s-serve.yaml"
)

// mergeShards merges shard plan and reject files with `codeplan merge` and
// returns the merged plans and rejects paths.
func mergeShards(t *testing.T, dir string, plans, rejects []string) (string, string) {
	t.Helper()
	merged, mergedRej := filepath.Join(dir, "merged.jsonl"), filepath.Join(dir, "merged.rejects.jsonl")
	args := append([]string{"codeplan", "-q", "merge", "--output", merged, "--rejects-output", mergedRej}, plans...)
	for _, r := range rejects {
		args = append(args, "--rejects", r)
	}
	if code := run(args); code != 0 {
		t.Fatalf("merge exit %d", code)
	}
	return merged, mergedRej
}

// checkIDsOnce asserts that files (outputs and rejects, or merged ones)
// hold every one of n input ids exactly once.
func checkIDsOnce(t *testing.T, n int, files ...string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range readIDs(t, files...) {
		seen[id]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("id %s appears %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct ids in %v, want %d", len(seen), files, n)
	}
}

// slurmTask starts the Slurm script as array task id of an array of count
// tasks starting at min, with this test binary as codeplan (see TestMain).
func slurmTask(t *testing.T, in, out string, id, count, min int, codeplan string) *exec.Cmd {
	cmd := exec.Command("bash", slurmScript, in, out)
	cmd.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1", "CODEPLAN="+codeplan, "MODEL=tiny",
		"EXTRACT_FLAGS=--parallel 2 --threads 1 --max-plan-tokens 16 --ctx 4096",
		fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", id), fmt.Sprintf("SLURM_ARRAY_TASK_COUNT=%d", count),
		fmt.Sprintf("SLURM_ARRAY_TASK_MIN=%d", min), fmt.Sprintf("SLURM_ARRAY_TASK_MAX=%d", min+count-1),
		"SLURM_ARRAY_TASK_STEP=1")
	return cmd
}

// TestSlurmArrayScript runs scripts/slurm-extract.sbatch as a Slurm array of
// three tasks would, kills one mid-run and requeues it, then merges: every
// input row is in the plans or the rejects exactly once.
func TestSlurmArrayScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	const n = 60
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans")
	var cmds []*exec.Cmd
	var stderr [3]bytes.Buffer
	for id := 1; id <= 3; id++ {
		cmd := slurmTask(t, in, out, id, 3, 1, os.Args[0])
		cmd.Stderr = &stderr[id-1]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	// Task 2 is preempted: killed once it has written a few rows.
	shard2 := []string{filepath.Join(out, "plans-2-of-3.jsonl"), filepath.Join(out, "rejects-2-of-3.jsonl")}
	deadline := time.Now().Add(2 * time.Minute)
	for countLines(shard2[0])+countLines(shard2[1]) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("task 2 wrote too little within 2 minutes; stderr:\n%s", stderr[1].String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmds[1].Process.Signal(syscall.SIGKILL)
	killed := cmds[1].Wait() != nil
	t.Logf("task 2 killed: %v, with %d rows written", killed, countLines(shard2[0])+countLines(shard2[1]))
	for i, cmd := range cmds {
		if i == 1 {
			continue
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("task %d: %v\n%s", i+1, err, stderr[i].String())
		}
	}
	if !killed {
		t.Log("task 2 finished before it could be killed; the requeue below then resumes nothing")
	}
	// Slurm requeues the task with the same id and environment.
	requeue := slurmTask(t, in, out, 2, 3, 1, os.Args[0])
	if msg, err := requeue.CombinedOutput(); err != nil {
		t.Fatalf("requeued task 2: %v\n%s", err, msg)
	}
	var sum struct{ Resumed, Processed int }
	data, _ := os.ReadFile(filepath.Join(out, "summary-2-of-3.json"))
	json.Unmarshal(data, &sum)
	if killed && sum.Resumed == 0 {
		t.Errorf("the requeued task resumed nothing: %s", data)
	}

	var plans, rejects []string
	for k := 1; k <= 3; k++ {
		plans = append(plans, filepath.Join(out, fmt.Sprintf("plans-%d-of-3.jsonl", k)))
		rejects = append(rejects, filepath.Join(out, fmt.Sprintf("rejects-%d-of-3.jsonl", k)))
	}
	merged, mergedRej := mergeShards(t, dir, plans, rejects)
	checkIDsOnce(t, n, merged, mergedRej)
}

// scriptArgs runs a job's command with "echo" standing in for codeplan and
// returns the --flag values it would have been given.
func scriptArgs(t *testing.T, cmd *exec.Cmd) (map[string]string, error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	flags := map[string]string{}
	fields := strings.Fields(string(outb))
	for i := 0; i+1 < len(fields); i++ {
		if strings.HasPrefix(fields[i], "--") {
			flags[fields[i]] = fields[i+1]
		}
	}
	return flags, nil
}

// TestSlurmScriptArrayBases: --array=1-8 and --array=0-7 both give shards
// 1/8..8/8, and arrays with gaps are refused with exit 2.
func TestSlurmScriptArrayBases(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	for _, min := range []int{0, 1} {
		for id := min; id < min+8; id++ {
			flags, err := scriptArgs(t, slurmTask(t, "in.jsonl", dir, id, 8, min, "echo"))
			if err != nil {
				t.Fatalf("--array=%d-%d task %d: %v", min, min+7, id, err)
			}
			k := id - min + 1
			if flags["--shard"] != fmt.Sprintf("%d/8", k) || flags["--output"] != filepath.Join(dir, fmt.Sprintf("plans-%d-of-8.jsonl", k)) {
				t.Errorf("--array=%d-%d task %d: %v", min, min+7, id, flags)
			}
		}
	}
	// --array=1,2,7: three tasks, but task 7 is not the third of a range.
	cmd := slurmTask(t, "in.jsonl", dir, 7, 3, 1, "echo")
	cmd.Env = append(cmd.Env, "SLURM_ARRAY_TASK_MAX=7")
	if _, err := scriptArgs(t, cmd); err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "evenly spaced") {
		t.Errorf("gapped array: %v", err)
	}
	cmd = exec.Command("bash", slurmScript, "in.jsonl", dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if _, err := scriptArgs(t, cmd); err == nil || !strings.Contains(err.Error(), "job array") {
		t.Errorf("outside an array: %v", err)
	}
}

// k8sJobSpec is the part of scripts/k8s-extract-job.yaml the tests read.
type k8sJobSpec struct {
	Kind string
	Spec struct {
		Completions    int
		CompletionMode string `yaml:"completionMode"`
		Template       struct {
			Spec struct {
				Containers []struct {
					Image   string
					Command []string
					Args    []string
					Env     []struct{ Name string }
				}
			}
		}
	}
}

// k8sVarRef is Kubernetes' $(VAR) reference in command and args.
var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// k8sJobContainer reads the Job's one container from scripts/k8s-extract-job.yaml.
func k8sJobContainer(t *testing.T) (k8sJobSpec, []string) {
	t.Helper()
	data, err := os.ReadFile(k8sJob)
	if err != nil {
		t.Fatal(err)
	}
	var job k8sJobSpec
	if err := yaml.Unmarshal(data, &job); err != nil {
		t.Fatalf("%s: %v", k8sJob, err)
	}
	if job.Kind != "Job" || job.Spec.CompletionMode != "Indexed" || job.Spec.Completions < 2 || len(job.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("not an Indexed Job with one container: %+v", job)
	}
	return job, job.Spec.Template.Spec.Containers[0].Args
}

// k8sPodArgs expands the Job's args for completion index idx as
// Kubernetes does, with the volumes and the model mapped onto this machine
// (dir, the corpus in, the tiny model), and returns them with their
// --flag=value pairs.
func k8sPodArgs(t *testing.T, jobArgs []string, idx int, dir, in string) ([]string, map[string]string) {
	t.Helper()
	var args []string
	for _, a := range jobArgs {
		a = k8sVarRef.ReplaceAllStringFunc(a, func(ref string) string {
			if ref == "$(JOB_COMPLETION_INDEX)" {
				return fmt.Sprint(idx)
			}
			t.Errorf("args refer to %s, which the Job does not set", ref)
			return ref
		})
		switch {
		case strings.HasSuffix(a, ".gguf"):
			a = "tiny"
		case a == "--gpu":
			continue
		case strings.HasPrefix(a, "--parallel="):
			a = "--parallel=2"
		case strings.HasPrefix(a, "--input="):
			a = "--input=" + in
		}
		args = append(args, strings.ReplaceAll(a, "=/data/", "="+dir+"/"))
	}
	flags := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = v
		}
	}
	os.MkdirAll(filepath.Dir(flags["--output"]), 0o755)
	return append(args, "--threads", "1", "--max-plan-tokens", "8", "--ctx", "4096"), flags
}

// TestK8sJobShards expands the Job's args for each completion index as
// Kubernetes does and runs them (on the tiny model, with the volumes mapped
// to a temporary folder): the pods' shards cover the corpus exactly once.
func TestK8sJobShards(t *testing.T) {
	job, jobArgs := k8sJobContainer(t)
	c := job.Spec.Template.Spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != imageBinary {
		t.Errorf("command %v: the image's entry is %s (and it has no shell)", c.Command, imageBinary)
	}
	if c.Image != imageName+":latest" {
		t.Errorf("image %q, want the one make image builds, %s:latest", c.Image, imageName)
	}
	n := job.Spec.Completions
	dir := t.TempDir()
	const rows = 24
	in := writeCorpus(t, dir, rows)
	seen := map[string]bool{}
	var plans, rejects []string
	for idx := 0; idx < n; idx++ {
		args, flags := k8sPodArgs(t, jobArgs, idx, dir, in)
		shard, err := dataset.ParseShard(flags["--shard"])
		if err != nil || shard.K != idx+1 || shard.N != n {
			t.Fatalf("index %d: --shard %q gives %v, %v; want %d/%d", idx, flags["--shard"], shard, err, idx+1, n)
		}
		for _, f := range []string{"--output", "--rejects", "--summary"} {
			if seen[flags[f]] {
				t.Errorf("index %d: %s %s is shared with another pod", idx, f, flags[f])
			}
			seen[flags[f]] = true
		}
		if code := run(append([]string{"codeplan", "-q"}, args...)); code != 0 {
			t.Fatalf("index %d: %v: exit %d", idx, args, code)
		}
		plans, rejects = append(plans, flags["--output"]), append(rejects, flags["--rejects"])
	}
	merged, mergedRej := mergeShards(t, dir, plans, rejects)
	checkIDsOnce(t, rows, merged, mergedRej)
}

// sigtermAfterRows starts cmd, sends it SIGTERM (as Slurm does at a time
// limit or preemption, and Kubernetes when it evicts a pod) once files hold
// at least rows lines, and returns its exit status.
func sigtermAfterRows(t *testing.T, cmd *exec.Cmd, rows int, files ...string) int {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := 0
		for _, f := range files {
			n += countLines(f)
		}
		if n >= rows {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("too few rows within 2 minutes; stderr:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code == 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	for _, crash := range []string{"goroutine ", "SIGSEGV", "panic:"} {
		if strings.Contains(stderr.String(), crash) {
			t.Errorf("crash trace %q in stderr:\n%s", crash, stderr.String())
		}
	}
	if code == exitInterrupted && !strings.Contains(stderr.String(), "interrupted: rerun the same command to resume") {
		t.Errorf("exit %d without the rerun message:\n%s", code, stderr.String())
	}
	return code
}

// TestSlurmRequeueAfterSIGTERM: a Slurm task stopped by SIGTERM (time
// limit, preemption) exits with the interrupted status, never 0, so Slurm
// does not record the shard as done; the requeued task resumes it, and
// every row ends up in the outputs exactly once.
func TestSlurmRequeueAfterSIGTERM(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	const n = 80
	in := writeCorpus(t, dir, n)
	out := filepath.Join(dir, "plans")
	plans, rejects := filepath.Join(out, "plans-1-of-1.jsonl"), filepath.Join(out, "rejects-1-of-1.jsonl")
	task := slurmTask(t, in, out, 1, 1, 1, os.Args[0])
	task.Env = append(task.Env, "EXTRACT_FLAGS=--parallel 1 --threads 1 --max-plan-tokens 16 --ctx 4096")
	if code := sigtermAfterRows(t, task, 3, plans, rejects); code != exitInterrupted {
		t.Fatalf("SIGTERM'd task exited %d, want %d (interrupted)", code, exitInterrupted)
	}
	done := countLines(plans) + countLines(rejects)
	if done >= n {
		t.Fatalf("the task finished all %d rows before SIGTERM; the test did not interrupt it", n)
	}
	requeue := slurmTask(t, in, out, 1, 1, 1, os.Args[0])
	if msg, err := requeue.CombinedOutput(); err != nil {
		t.Fatalf("requeued task: %v\n%s", err, msg)
	}
	var sum struct{ Resumed int }
	data, _ := os.ReadFile(filepath.Join(out, "summary-1-of-1.json"))
	json.Unmarshal(data, &sum)
	if sum.Resumed != done {
		t.Errorf("the requeued task resumed %d rows, want the %d done before SIGTERM: %s", sum.Resumed, done, data)
	}
	checkIDsOnce(t, n, plans, rejects)
}

// TestK8sJobRestartAfterSIGTERM: a pod of the Indexed Job stopped by
// SIGTERM exits with the interrupted status, which restartPolicy OnFailure
// restarts (exit 0 would complete the index with its shard unfinished);
// the restarted pod resumes, and the shard's rows are all there once.
func TestK8sJobRestartAfterSIGTERM(t *testing.T) {
	_, jobArgs := k8sJobContainer(t)
	data, _ := os.ReadFile(k8sJob)
	if !strings.Contains(string(data), "restartPolicy: OnFailure") {
		t.Fatalf("%s: the pods must be restarted on failure, so that an interrupted one resumes", k8sJob)
	}
	dir := t.TempDir()
	const n = 160
	in := writeCorpus(t, dir, n)
	args, flags := k8sPodArgs(t, jobArgs, 0, dir, in)
	for i, a := range args {
		if strings.HasPrefix(a, "--parallel=") {
			args[i] = "--parallel=1"
		}
	}
	shard, err := dataset.ParseShard(flags["--shard"])
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := 0; i < n; i++ {
		if shard.Keep(fmt.Sprintf("r%03d", i)) {
			want++
		}
	}
	if want < 8 {
		t.Fatalf("shard %v holds only %d of %d rows", shard, want, n)
	}
	pod := exec.Command(os.Args[0], args...)
	pod.Env = append(os.Environ(), "CODEPLAN_TEST_MAIN=1")
	if code := sigtermAfterRows(t, pod, 3, flags["--output"], flags["--rejects"]); code != exitInterrupted {
		t.Fatalf("SIGTERM'd pod exited %d, want %d (interrupted)", code, exitInterrupted)
	}
	if code := run(append([]string{"codeplan", "-q"}, args...)); code != 0 {
		t.Fatalf("restarted pod: exit %d", code)
	}
	ids := readIDs(t, flags["--output"], flags["--rejects"])
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("id %s twice", id)
		}
		seen[id] = true
	}
	if len(seen) != want {
		t.Errorf("%d rows of shard %v after the restart, want %d", len(seen), shard, want)
	}
}

// TestK8sJobKubectlDryRun has kubectl read the Job as `kubectl create
// --dry-run=client` does. kubectl needs an API server to map the kind even
// then, so a fake one answers its discovery requests for batch/v1.
func TestK8sJobKubectlDryRun(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api":
			fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`)
		case "/api/v1":
			fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","get"]},{"name":"services","singularName":"service","namespaced":true,"kind":"Service","verbs":["create","get"]}]}`)
		case "/apis":
			fmt.Fprint(w, `{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"batch","versions":[{"groupVersion":"batch/v1","version":"v1"}],"preferredVersion":{"groupVersion":"batch/v1","version":"v1"}},{"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}}]}`)
		case "/apis/apps/v1":
			fmt.Fprint(w, `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[{"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["create","get","list"]}]}`)
		case "/apis/batch/v1":
			fmt.Fprint(w, `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"batch/v1","resources":[{"name":"jobs","singularName":"job","namespaced":true,"kind":"Job","verbs":["create","get","list"]}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	home := t.TempDir()
	cmd := exec.Command(kubectl, "--server", api.URL, "--cache-dir", filepath.Join(home, "cache"),
		"create", "--dry-run=client", "--validate=false", "-o", "yaml", "-f", k8sJob)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, stderr.String())
	}
	var job k8sJobSpec
	if err := yaml.Unmarshal(out, &job); err != nil {
		t.Fatalf("kubectl output: %v\n%s", err, out)
	}
	if job.Kind != "Job" || job.Spec.Completions != 8 || len(job.Spec.Template.Spec.Containers) != 1 ||
		!strings.Contains(strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "), "--shard=$(JOB_COMPLETION_INDEX)+1/8") {
		t.Errorf("kubectl read back:\n%s", out)
	}

	// The serving fleet: a Deployment of codeplan serve and its Service.
	cmd = exec.Command(kubectl, "--server", api.URL, "--cache-dir", filepath.Join(home, "cache"),
		"create", "--dry-run=client", "--validate=false", "-o", "yaml", "-f", k8sServe)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	stderr.Reset()
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", k8sServe, err, stderr.String())
	}
	for _, want := range []string{"kind: Deployment", "kind: Service", "- serve", "- --host=0.0.0.0", "image: codeplan:latest", "- /bin/codeplan"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl read back no %q:\n%s", want, out)
		}
	}
}
