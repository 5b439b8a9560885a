package extract

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/llama/tiny"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/remote"
	"github.com/codeplan-dev/codeplan/server"
)

// TestRemoteAgainstCodeplanServe extracts the same rows on the in-process
// engine and through `codeplan serve` (in-process, on loopback) with the
// Remote generator. NewRemote must detect codeplan serve and ask for direct
// mode, so the server completes the extraction prompt as it is: every row
// gets the same output text and the same plan tokens (the server's
// completion tokens) on both paths. Without direct mode the server wraps the
// prompt in its default plan phase, which the last check shows differs.
func TestRemoteAgainstCodeplanServe(t *testing.T) {
	p, err := tiny.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.LoadModel(p, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const parallel, slotCtx = 2, 2048
	lctx, err := m.NewContext(llama.ContextOptions{ContextSize: parallel * slotCtx, Sequences: parallel, BatchSize: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	eng, err := engine.New(lctx, engine.Options{Parallel: parallel, QueueSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv, err := server.New(server.Config{Engine: eng, Chat: planner.ChatML{}, ModelID: "tiny-serve", Queue: 8})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()

	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := range 4 {
		fmt.Fprintf(&b, `{"id":"r%d","prompt":"What is %d plus %d?","response":"Add them: %d + %d = %d."}`+"\n", i, i, i+2, i, i+2, 2*i+2)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sampling := llama.SamplerOptions{Seed: 7} // greedy
	run := func(name string, gen Generator) map[string]string {
		cfg := Config{Input: in, Output: filepath.Join(dir, name+".jsonl"), Rejects: filepath.Join(dir, name+".rejects.jsonl"),
			Workers: 2, MaxPlanTokens: 24, Logger: zerolog.Nop()}
		sum, err := Run(context.Background(), context.Background(), gen, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sum.Processed != 4 || sum.Failed != 0 {
			t.Fatalf("%s: summary %+v", name, sum)
		}
		got := map[string]string{}
		for _, path := range []string{cfg.Output, cfg.Rejects} {
			if _, err := os.Stat(path); err != nil {
				continue
			}
			for _, row := range lines(t, path) {
				text, _ := row["output"].(string) // rejects keep the raw output
				if plan, ok := row["plan"].(string); ok {
					text = plan
				}
				if row["plan_tokens"].(float64) <= 0 {
					t.Errorf("%s: row %v has no plan tokens", name, row["id"])
				}
				got[row["id"].(string)] = fmt.Sprintf("reason=%v plan_tokens=%v text=%q", row["reason"], row["plan_tokens"], text)
			}
		}
		return got
	}
	local := run("local", Local{Engine: eng, Chat: planner.ChatML{}, Sampling: sampling})

	client, err := remote.New(remote.Options{BaseURL: "http://" + ln.Addr().String() + "/v1", Model: "tiny-serve", Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	rg, models, err := NewRemote(context.Background(), client, sampling)
	if err != nil {
		t.Fatal(err)
	}
	if rg.Params.Mode != "direct" || len(models) != 1 || models[0] != "tiny-serve" || rg.Params.Seed == nil || *rg.Params.Seed != 7 {
		t.Fatalf("NewRemote: params %+v, models %v", rg.Params, models)
	}
	viaServer := run("remote", rg)
	if len(local) != 4 {
		t.Fatalf("local run wrote %d rows, want 4", len(local))
	}
	for id, want := range local {
		if viaServer[id] != want {
			t.Errorf("row %s:\n local  %s\n server %s", id, want, viaServer[id])
		}
	}

	// Control: without direct mode, codeplan serve plans first.
	msgs := []planner.Message{{Role: planner.RoleUser, Content: "Prompt: What is 1 plus 3?\nResponse: 4."}}
	direct, err := rg.Generate(context.Background(), "x", msgs, 24)
	if err != nil {
		t.Fatal(err)
	}
	planned := rg
	planned.Params.Mode = ""
	wrapped, err := planned.Generate(context.Background(), "y", msgs, 24)
	if err != nil {
		t.Fatal(err)
	}
	if wrapped.Text == direct.Text {
		t.Errorf("server's default mode gave the same reply as direct mode (%q): the control does not control", direct.Text)
	}
}
