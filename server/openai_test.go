package server

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/codeplan-dev/codeplan/planner"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1MiB", 1 << 20, true},
		{"1mib", 1 << 20, true},
		{"512k", 512 << 10, true},
		{"2.5MB", 2500000, true},
		{"65536", 65536, true},
		{" 4 KiB ", 4096, true},
		{"1G", 1 << 30, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"1 parsec", 0, false},
		{"0", 0, false},
		{"1.2.3k", 0, false},
		{"-5", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseChat(t *testing.T) {
	d := defaults{maxTokens: 100, maxPlan: 50}
	tests := []struct {
		name      string
		body      string
		wantMode  planner.Mode
		wantHist  []planner.Message
		wantUser  string
		wantMax   int
		wantPlan  int
		wantStops []string
		wantParam string // "" = valid
	}{
		{
			name:     "string content and defaults",
			body:     `{"messages":[{"role":"user","content":"hi"}]}`,
			wantMode: planner.CodePlan, wantUser: "hi", wantMax: 100, wantPlan: 50,
		},
		{
			name: "history, developer role, text parts, limits",
			body: `{"mode":"NLPlan","max_completion_tokens":7,"max_plan_tokens":3,"stop":"END","messages":[
				{"role":"developer","content":"be brief"},
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":null},
				{"role":"user","content":"c"}]}`,
			wantMode: planner.NLPlan,
			wantHist: []planner.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "a\nb"}, {Role: "assistant", Content: ""}},
			wantUser: "c", wantMax: 7, wantPlan: 3, wantStops: []string{"END"},
		},
		{
			name:     "stop list drops empty strings",
			body:     `{"mode":"direct","stop":["x","","y"],"messages":[{"role":"user","content":"q"}]}`,
			wantMode: planner.Direct, wantUser: "q", wantMax: 100, wantPlan: 50, wantStops: []string{"x", "y"},
		},
		{name: "no messages", body: `{"messages":[]}`, wantParam: "messages"},
		{name: "bad mode", body: `{"mode":"tree","messages":[{"role":"user","content":"q"}]}`, wantParam: "mode"},
		{name: "last is system", body: `{"messages":[{"role":"system","content":"q"}]}`, wantParam: "messages[0].role"},
		{name: "no role", body: `{"messages":[{"content":"q"}]}`, wantParam: "messages[0].role"},
		{name: "number content", body: `{"messages":[{"role":"user","content":5}]}`, wantParam: "messages[0].content"},
		{name: "part without text", body: `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, wantParam: "messages[0].content"},
		{name: "tools", body: `{"tools":[{"type":"function"}],"messages":[{"role":"user","content":"q"}]}`, wantParam: "tools"},
		{name: "top_logprobs without logprobs", body: `{"top_logprobs":2,"messages":[{"role":"user","content":"q"}]}`, wantParam: "top_logprobs"},
		{name: "top_logprobs over 20", body: `{"logprobs":true,"top_logprobs":21,"messages":[{"role":"user","content":"q"}]}`, wantParam: "top_logprobs"},
		{name: "top_p", body: `{"top_p":1.5,"messages":[{"role":"user","content":"q"}]}`, wantParam: "top_p"},
		{name: "presence_penalty", body: `{"presence_penalty":-3,"messages":[{"role":"user","content":"q"}]}`, wantParam: "presence_penalty"},
		{name: "negative plan limit", body: `{"max_plan_tokens":-1,"messages":[{"role":"user","content":"q"}]}`, wantParam: "max_plan_tokens"},
		{name: "n", body: `{"n":3,"messages":[{"role":"user","content":"q"}]}`, wantParam: "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req chatRequest
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			in, e := parseChat(&req, planner.CodePlan, d)
			if tt.wantParam != "" {
				if e == nil || e.Param != tt.wantParam || e.Status != 400 {
					t.Fatalf("got %v, want a 400 about %s", e, tt.wantParam)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if in.mode != tt.wantMode || in.user != tt.wantUser || in.params.maxTokens != tt.wantMax || in.params.maxPlan != tt.wantPlan {
				t.Errorf("mode %s user %q max %d plan %d", in.mode, in.user, in.params.maxTokens, in.params.maxPlan)
			}
			if len(in.history) != len(tt.wantHist) || (len(tt.wantHist) > 0 && !reflect.DeepEqual(in.history, tt.wantHist)) {
				t.Errorf("history %+v, want %+v", in.history, tt.wantHist)
			}
			if !reflect.DeepEqual(in.params.stops, tt.wantStops) {
				t.Errorf("stops %q, want %q", in.params.stops, tt.wantStops)
			}
		})
	}
}

func TestSamplingParams(t *testing.T) {
	var req chatRequest
	body := `{"temperature":0.7,"top_p":0.9,"top_k":40,"min_p":0.05,"seed":12345,"frequency_penalty":0.5,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"q"}]}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	in, e := parseChat(&req, planner.Direct, defaults{maxTokens: 1, maxPlan: 1})
	if e != nil {
		t.Fatal(e)
	}
	s := in.params.sampling
	if s.Temperature != 0.7 || s.TopP != 0.9 || s.TopK != 40 || s.MinP != 0.05 || s.Seed != 12345 || s.FrequencyPenalty != 0.5 {
		t.Errorf("sampling %+v", s)
	}
	if !in.params.stream || !in.params.usage {
		t.Errorf("stream %v include_usage %v", in.params.stream, in.params.usage)
	}
	// No temperature: the server default (greedy here).
	req = chatRequest{}
	_ = json.Unmarshal([]byte(`{"messages":[{"role":"user","content":"q"}]}`), &req)
	in, _ = parseChat(&req, planner.Direct, defaults{maxTokens: 1, maxPlan: 1})
	if !in.params.sampling.Greedy() {
		t.Errorf("no temperature with a greedy server default: %+v", in.params.sampling)
	}
}

func TestParseCompletion(t *testing.T) {
	d := defaults{maxTokens: 16}
	tests := []struct {
		body, prompt, param string
	}{
		{`{"prompt":"abc"}`, "abc", ""},
		{`{"prompt":["abc"]}`, "abc", ""},
		{`{"prompt":""}`, "", "prompt"},
		{`{"prompt":[1,2,3]}`, "", "prompt"},
		{`{"prompt":["a","b"]}`, "", "prompt"},
		{`{"prompt":7}`, "", "prompt"},
		{`{}`, "", "prompt"},
		{`{"prompt":"a","echo":true}`, "", "echo"},
		{`{"prompt":"a","best_of":2}`, "", "best_of"},
		{`{"prompt":"a","max_tokens":-4}`, "", "max_tokens"},
	}
	for _, tt := range tests {
		var req completionRequest
		if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
			t.Fatal(err)
		}
		in, e := parseCompletion(&req, d)
		switch {
		case tt.param != "" && (e == nil || e.Param != tt.param):
			t.Errorf("%s: got %v, want a 400 about %s", tt.body, e, tt.param)
		case tt.param == "" && (e != nil || in.prompt != tt.prompt || in.params.maxTokens != 16):
			t.Errorf("%s: prompt %q max %d err %v", tt.body, in.prompt, in.params.maxTokens, e)
		}
	}
}

func TestStopListJSON(t *testing.T) {
	for body, want := range map[string]stopList{`null`: nil, `"a"`: {"a"}, `["a","b"]`: {"a", "b"}} {
		var s stopList
		if err := json.Unmarshal([]byte(body), &s); err != nil || !reflect.DeepEqual(s, want) {
			t.Errorf("%s: %q %v", body, s, err)
		}
	}
	var s stopList
	if err := json.Unmarshal([]byte(`[1]`), &s); err == nil {
		t.Error("stop [1] accepted")
	}
}
