package extract

import (
	"maps"
	"testing"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/internal/pipeline"
	"github.com/codeplan-dev/codeplan/llama"
	"github.com/codeplan-dev/codeplan/planner"
)

// TestKeyFromConfig pins the settings key a Config derives: the same
// entries, names and number formats that cmd assembled before the key moved
// here, so outputs written by earlier versions still resume.
func TestKeyFromConfig(t *testing.T) {
	minGain := 0.25
	cfg := Config{
		Template: planner.DefaultTemplate(), MaxPlanTokens: 300,
		Filter:      planner.NewFilter(planner.FilterConfig{MinWords: 3, MaxWords: 0}),
		ModelKey:    pipeline.ModelKey{Name: "m.gguf", Fingerprint: "fp", AdapterKeyed: true, LoRA: "a.gguf@0011", LoRAScale: 0.5},
		SamplingKey: llama.SamplerOptions{Temperature: 0.7, TopP: 0.9, TopK: 40, Seed: 7}.Key(),
		GainModel:   "extraction model", MinGain: &minGain,
	}
	want := dataset.Settings{
		"model": "m.gguf", "model_fingerprint": "fp", "lora": "a.gguf@0011", "lora_scale": "0.5",
		"temperature": "0.7", "top_p": "0.9", "top_k": "40", "min_p": "0", "repeat_penalty": "0", "seed": "7",
		"template": planner.DefaultTemplate().Hash(), "max_plan_tokens": "300", "min_words": "3", "max_words": "0",
		"gain_model": "extraction model", "min_gain": "0.25",
	}
	if got := cfg.Key(); !maps.Equal(got, want) {
		t.Errorf("key\n got %v\nwant %v", got, want)
	}
	// A served model has no fingerprint and no adapter entries, and
	// without gain scoring there are no gain entries.
	cfg.ModelKey, cfg.GainModel = pipeline.ModelKey{Name: "served"}, ""
	got := cfg.Key()
	for _, k := range []string{"model_fingerprint", "lora", "lora_scale", "gain_model", "min_gain"} {
		if _, ok := got[k]; ok {
			t.Errorf("key has %s: %v", k, got)
		}
	}
}

// A capacity reject (prompt_too_long, context_full) is redone only by a
// run whose sequences hold more than the one that rejected it; other
// rejects never are.
func TestRedoCapacityRejects(t *testing.T) {
	cfg := Config{SeqContext: 4096}
	for row, want := range map[string]bool{
		`{"id":"a","reason":"prompt_too_long","seq_ctx":512}`:  true,
		`{"id":"a","reason":"prompt_too_long"}`:                true, // written before seq_ctx was recorded
		`{"id":"a","reason":"prompt_too_long","seq_ctx":4096}`: false,
		`{"id":"a","reason":"no_code","seq_ctx":512}`:          false,
		`{"id":"a","reason":"context_full","seq_ctx":512}`:     true,
		`{"id":"a","reason":"context_full","seq_ctx":4096}`:    false,
		`{"id":"a","reason":"context_full","seq_ctx":8192}`:    false,
		`{"id":"a","reason":"context_full"}`:                   true, // written before seq_ctx was recorded
		`{"id":"a","reason":"not_terminated","seq_ctx":512}`:   false,
		`{"id":"a","plan":"x"}`:                                false,
	} {
		if got := cfg.redo([]byte(row)); got != want {
			t.Errorf("redo(%s) = %v, want %v", row, got, want)
		}
	}
	if (Config{}).redo([]byte(`{"id":"a","reason":"prompt_too_long","seq_ctx":1}`)) || (Config{}).redo([]byte(`{"id":"a","reason":"context_full","seq_ctx":1}`)) {
		t.Error("a run of unknown sequence size (a served model) redid a capacity reject")
	}
}
