package planner

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	testSystem = "You are a careful assistant."
	testUser   = "What is 2+3*4?"
	// The plan as a model might produce it: trailing spaces and blank lines
	// that CleanPlan must remove.
	testPlan = "product = multiply(3, 4)  \nreturn add(2, product)\n\n"
)

var testHistory = []Message{
	{Role: RoleUser, Content: "Hi"},
	{Role: RoleAssistant, Content: "Hello! How can I help?"},
}

// chatHead renders the test conversation by hand, with user as the last
// user message, ending with the assistant header.
func chatHead(user string) string {
	return "<|im_start|>system\nYou are a careful assistant.<|im_end|>\n" +
		"<|im_start|>user\nHi<|im_end|>\n" +
		"<|im_start|>assistant\nHello! How can I help?<|im_end|>\n" +
		"<|im_start|>user\n" + user + "<|im_end|>\n" +
		"<|im_start|>assistant\n"
}

func TestPhasesGolden(t *testing.T) {
	codeUser := testUser + "\n\n" + CodePlanInstruction
	nlUser := testUser + "\n\n" + NLPlanInstruction
	cleanPlan := "product = multiply(3, 4)\nreturn add(2, product)"
	tests := []struct {
		mode   Mode
		format Format
		phase1 string // "" when the mode has no plan phase
		phase2 string
	}{
		{Direct, Trained, "", chatHead(testUser)},
		{Direct, Prompted, "", chatHead(testUser)},
		{NLPlan, Trained,
			chatHead(testUser) + "Plan:\n",
			chatHead(testUser) + "Plan:\n" + cleanPlan + "\nResponse:\n"},
		{NLPlan, Prompted,
			chatHead(nlUser) + "Plan:\n",
			chatHead(nlUser) + "Plan:\n" + cleanPlan + "\nResponse:\n"},
		{CodePlan, Trained,
			chatHead(testUser) + "Plan:\n```python\n",
			chatHead(testUser) + "Plan:\n```python\n" + cleanPlan + "\n```\nResponse:\n"},
		{CodePlan, Prompted,
			chatHead(codeUser) + "Plan:\n```python\n",
			chatHead(codeUser) + "Plan:\n```python\n" + cleanPlan + "\n```\nResponse:\n"},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode)+"_"+string(tc.format), func(t *testing.T) {
			p := Prompter{Mode: tc.mode, Format: tc.format, Chat: ChatML{}, System: testSystem}
			plan := testPlan
			if tc.mode == Direct {
				plan = ""
			}
			ph1, err := p.PlanPrompt(testHistory, testUser)
			if tc.phase1 == "" {
				if !errors.Is(err, ErrNoPlanPhase) {
					t.Fatalf("PlanPrompt error = %v, want ErrNoPlanPhase", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if ph1.Text != tc.phase1 {
					t.Errorf("phase 1 text\n got %q\nwant %q", ph1.Text, tc.phase1)
				}
				if len(ph1.Stop) == 0 {
					t.Error("phase 1 has no stop strings")
				}
			}
			ph2, err := p.AnswerPrompt(testHistory, testUser, plan)
			if err != nil {
				t.Fatal(err)
			}
			if ph2.Text != tc.phase2 {
				t.Errorf("phase 2 text\n got %q\nwant %q", ph2.Text, tc.phase2)
			}
			if len(ph2.Stop) != 0 {
				t.Errorf("phase 2 stops = %q, want none", ph2.Stop)
			}
			if tc.phase1 != "" && !strings.HasPrefix(ph2.Text, ph1.Text+CleanPlan(plan)) {
				t.Error("phase 2 text does not extend phase 1 text + plan")
			}
			one, err := p.OneShotPrompt(testHistory, testUser)
			if err != nil {
				t.Fatal(err)
			}
			wantOne := tc.phase1
			if wantOne == "" {
				wantOne = tc.phase2
			}
			if one.Text != wantOne || len(one.Stop) != 0 {
				t.Errorf("one-shot = %q stops %q, want %q and no stops", one.Text, one.Stop, wantOne)
			}
		})
	}
}

func TestPlanStops(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want []string
	}{
		{CodePlan, []string{"\n```", "\nResponse:"}},
		{NLPlan, []string{"\nResponse:"}},
	} {
		ph, err := Prompter{Mode: tc.mode, Format: Trained, Chat: ChatML{}}.PlanPrompt(nil, "q")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ph.Stop, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s stops = %q, want %q", tc.mode, ph.Stop, tc.want)
		}
		// A model that follows the format emits a stop string right after the plan.
		asst, err := AssistantText(tc.mode, "do(x)", "r")
		if err != nil {
			t.Fatal(err)
		}
		rest := strings.TrimPrefix(asst, tc.mode.PlanOpener()+"do(x)")
		if !strings.HasPrefix(rest, tc.want[0]) {
			t.Errorf("%s: text after the plan %q does not start with stop %q", tc.mode, rest, tc.want[0])
		}
	}
}

func TestNoSystemNoHistory(t *testing.T) {
	p := Prompter{Mode: CodePlan, Format: Trained, Chat: ChatML{}}
	ph, err := p.PlanPrompt(nil, "Q")
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nPlan:\n```python\n"
	if ph.Text != want {
		t.Errorf("got %q, want %q", ph.Text, want)
	}
}

func TestPrompterErrors(t *testing.T) {
	good := Prompter{Mode: CodePlan, Format: Trained, Chat: ChatML{}}
	tests := []struct {
		name    string
		p       Prompter
		history []Message
		plan    string
		want    string
	}{
		{"nil chat", Prompter{Mode: CodePlan, Format: Trained}, nil, "x = 1", "Chat is nil"},
		{"bad mode", Prompter{Mode: "cot", Format: Trained, Chat: ChatML{}}, nil, "x = 1", `Mode "cot"`},
		{"bad format", Prompter{Mode: CodePlan, Format: "fewshot", Chat: ChatML{}}, nil, "x = 1", `Format "fewshot"`},
		{"bad history role", good, []Message{{Role: "tool", Content: "x"}}, "x = 1", "history message 0"},
		{"fence in plan", good, nil, "x = 1\n```\ny = 2", "code fence"},
		{"direct with plan", Prompter{Mode: Direct, Format: Trained, Chat: ChatML{}}, nil, "x = 1", "direct mode takes no plan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.AnswerPrompt(tc.history, "q", tc.plan)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTrainingExample(t *testing.T) {
	tests := []struct {
		mode               Mode
		format             Format
		system             string
		wantPrefix, target string
	}{
		{CodePlan, Trained, "",
			"<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n<|im_start|>assistant\n",
			"Plan:\n```python\nproduct = multiply(3, 4)\nreturn add(2, product)\n```\nResponse:\n3*4 = 12, so the result is 14.<|im_end|>\n"},
		{NLPlan, Trained, "",
			"<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n<|im_start|>assistant\n",
			"Plan:\nproduct = multiply(3, 4)\nreturn add(2, product)\nResponse:\n3*4 = 12, so the result is 14.<|im_end|>\n"},
		{Direct, Trained, "S",
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 2+3*4?<|im_end|>\n<|im_start|>assistant\n",
			"3*4 = 12, so the result is 14.<|im_end|>\n"},
		{CodePlan, Prompted, "",
			"<|im_start|>user\nWhat is 2+3*4?\n\n" + CodePlanInstruction + "<|im_end|>\n<|im_start|>assistant\n",
			"Plan:\n```python\nproduct = multiply(3, 4)\nreturn add(2, product)\n```\nResponse:\n3*4 = 12, so the result is 14.<|im_end|>\n"},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode)+"_"+string(tc.format), func(t *testing.T) {
			p := Prompter{Mode: tc.mode, Format: tc.format, Chat: ChatML{}, System: tc.system}
			prefix, target, err := p.TrainingExample(testUser, testPlan, "  3*4 = 12, so the result is 14.\n")
			if err != nil {
				t.Fatal(err)
			}
			if prefix != tc.wantPrefix {
				t.Errorf("prefix\n got %q\nwant %q", prefix, tc.wantPrefix)
			}
			if target != tc.target {
				t.Errorf("target\n got %q\nwant %q", target, tc.target)
			}
			// Training and inference must agree: the phase 2 prompt is a prefix
			// of the training text.
			ph, err := p.AnswerPrompt(nil, testUser, map[bool]string{true: testPlan}[tc.mode.HasPlan()])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(prefix+target, ph.Text) {
				t.Errorf("phase 2 text %q is not a prefix of the training text %q", ph.Text, prefix+target)
			}
		})
	}
}

// thinkTemplate mimics templates that rewrite past assistant turns (as Qwen3
// does with its think block), so the generation prompt is not a prefix.
type thinkTemplate struct{}

func (thinkTemplate) ApplyTemplate(msgs []Message, addAssistant bool) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		if m.Role == RoleAssistant {
			b.WriteString("<asst><think></think>" + m.Content + "</asst>")
			continue
		}
		b.WriteString("<" + m.Role + ">" + m.Content + "</" + m.Role + ">")
	}
	if addAssistant {
		b.WriteString("<asst>\n")
	}
	return b.String(), nil
}

// failTemplate always fails, to check that template errors are passed on.
type failTemplate struct{}

func (failTemplate) ApplyTemplate([]Message, bool) (string, error) {
	return "", errors.New("no template in model")
}

func TestTrainingExampleErrors(t *testing.T) {
	p := Prompter{Mode: CodePlan, Format: Trained, Chat: thinkTemplate{}}
	_, _, err := p.TrainingExample("q", "x = f()", "r")
	if err == nil || !strings.Contains(err.Error(), "not a prefix") {
		t.Errorf("mismatching template: error = %v, want 'not a prefix'", err)
	}
	p.Chat = failTemplate{}
	_, _, err = p.TrainingExample("q", "x = f()", "r")
	if err == nil || !strings.Contains(err.Error(), "no template in model") {
		t.Errorf("failing template: error = %v", err)
	}
	p.Chat = ChatML{}
	for _, plan := range []string{"", "  \n ", "x = 1\n~~~\ny = 2"} {
		if _, _, err := p.TrainingExample("q", plan, "r"); err == nil {
			t.Errorf("plan %q: no error", plan)
		}
	}
	p.Mode = NLPlan
	if _, _, err := p.TrainingExample("q", "1. do this\nResponse: 5", "r"); err == nil {
		t.Error("nlplan with a Response: line in the plan: no error")
	}
}

func TestAssistantText(t *testing.T) {
	got, err := AssistantText(CodePlan, "\n  x = f()\n  return x  \n", "\nR\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Plan:\n```python\n  x = f()\n  return x\n```\nResponse:\nR"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := AssistantText("bogus", "p", "r"); err == nil {
		t.Error("invalid mode: no error")
	}
	if got, _ := AssistantText(Direct, "ignored", " R "); got != "R" {
		t.Errorf("direct = %q, want R", got)
	}
}

func TestSplitOutput(t *testing.T) {
	tests := []struct {
		name         string
		mode         Mode
		text         string
		plan, answer string
		ok           bool
	}{
		{"trained full", CodePlan, "Plan:\n```python\nx = f()\n```\nResponse:\nIt is 5.", "x = f()", "It is 5.", true},
		{"after prefill", CodePlan, "x = f()\nreturn x\n```\nResponse:\nIt is 5.\n", "x = f()\nreturn x", "It is 5.", true},
		{"markdown headers", CodePlan, "**Plan:**\n\n```py\nx = f()\n```\n\n**Response:** It is 5.\nDone.", "x = f()", "It is 5.\nDone.", true},
		{"hash header", CodePlan, "## Plan\n```python\nx = f()\n```\n### Answer\nIt is 5.", "x = f()", "It is 5.", true},
		{"answer-like code inside fence", CodePlan, "```python\nResponse: int = compute()\n```\nResponse:\n5", "Response: int = compute()", "5", true},
		{"missing closing fence", CodePlan, "```python\nx = f()\nResponse:\n5", "x = f()", "5", true},
		{"closing fence without header", CodePlan, "Plan:\n```python\nx = f()\n```\nThe result is 5.", "x = f()", "The result is 5.", true},
		{"cut off in plan", CodePlan, "Plan:\n```python\nx = f(\n", "x = f(", "", false},
		{"cut off after fence", CodePlan, "x = f()\n```\n", "x = f()", "", false},
		{"indented answer is code", CodePlan, "def g():\n    answer: int = 1\nResponse:\n1", "def g():\n    answer: int = 1", "1", true},
		{"nlplan", NLPlan, "Plan:\n1. Multiply.\n2. Add.\nResponse:\n14", "1. Multiply.\n2. Add.", "14", true},
		{"nlplan prefill", NLPlan, "1. Multiply.\n2. Add.\nANSWER: 14", "1. Multiply.\n2. Add.", "14", true},
		{"nlplan no answer", NLPlan, "1. Multiply.\n2. Add.", "1. Multiply.\n2. Add.", "", false},
		{"responsive is not a header", NLPlan, "1. Think.\nResponsive care.\nResponse:\nok", "1. Think.\nResponsive care.", "ok", true},
		{"legacy answer header", NLPlan, "1. Multiply.\n2. Add.\nAnswer:\n14", "1. Multiply.\n2. Add.", "14", true},
		{"legacy answer after fence", CodePlan, "x = f()\n```\nAnswer: 5", "x = f()", "5", true},
		{"response header wins over answer line", NLPlan, "1. Add.\nResponse:\nAnswer: 14", "1. Add.", "Answer: 14", true},
		{"answering is not a header", NLPlan, "1. Think.\nAnswering needs care.\nResponse:\nok", "1. Think.\nAnswering needs care.", "ok", true},
		{"crlf", CodePlan, "Plan:\r\n```python\r\nx = f()\r\n```\r\nResponse:\r\n5\r\n", "x = f()", "5", true},
		{"direct", Direct, "  Just the answer.\n", "", "Just the answer.", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, answer, ok := SplitOutput(tc.mode, tc.text)
			if plan != tc.plan || answer != tc.answer || ok != tc.ok {
				t.Errorf("SplitOutput = (%q, %q, %v), want (%q, %q, %v)", plan, answer, ok, tc.plan, tc.answer, tc.ok)
			}
		})
	}
}

func TestSplitOutputRoundTrip(t *testing.T) {
	plans := []string{"x = f()", "def solve(q):\n    for item in q:\n        check(item)\n    return combine()", "1. a\n2. b"}
	for _, mode := range Modes() {
		for _, plan := range plans {
			text, err := AssistantText(mode, plan, "The answer\n\nis 5.")
			if err != nil {
				t.Fatal(err)
			}
			gotPlan, gotAnswer, ok := SplitOutput(mode, text)
			wantPlan := plan
			if mode == Direct {
				wantPlan = ""
			}
			if !ok || gotPlan != wantPlan || gotAnswer != "The answer\n\nis 5." {
				t.Errorf("%s: round trip of %q gave (%q, %q, %v)", mode, text, gotPlan, gotAnswer, ok)
			}
		}
	}
}

func TestChatML(t *testing.T) {
	got, err := ChatML{}.ApplyTemplate([]Message{{Role: RoleSystem, Content: "s"}, {Role: RoleUser, Content: "u"}, {Role: RoleAssistant, Content: "a"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got, _ = ChatML{}.ApplyTemplate([]Message{{Role: RoleUser, Content: "u"}}, true)
	if want := "<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("with assistant header: got %q, want %q", got, want)
	}
	for _, role := range []string{"", "tool", "User"} {
		if _, err := (ChatML{}).ApplyTemplate([]Message{{Role: role, Content: "x"}}, false); err == nil {
			t.Errorf("role %q: no error", role)
		}
	}
}

func TestParseModes(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"codeplan", "codeplan", ""},
		{" Direct , CODEPLAN ", "direct,codeplan", ""},
		{"all", "direct,nlplan,codeplan", ""},
		{"nlplan,direct", "nlplan,direct", ""},
		{"", "", "empty mode list"},
		{"direct,,codeplan", "", "entry 2 is empty"},
		{"direct,cot", "", `unknown mode "cot"`},
		{"direct,direct", "", "given twice"},
	}
	for _, tc := range tests {
		got, err := ParseModes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseModes(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseModes(%q): %v", tc.in, err)
			continue
		}
		var names []string
		for _, m := range got {
			names = append(names, string(m))
		}
		if strings.Join(names, ",") != tc.want {
			t.Errorf("ParseModes(%q) = %v, want %s", tc.in, names, tc.want)
		}
	}
}

func TestModeFormatText(t *testing.T) {
	var v struct {
		Mode   Mode   `json:"mode"`
		Format Format `json:"format"`
	}
	if err := json.Unmarshal([]byte(`{"mode":"CodePlan","format":"prompted"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.Mode != CodePlan || v.Format != Prompted {
		t.Errorf("got %+v", v)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"mode":"codeplan","format":"prompted"}` {
		t.Errorf("marshal = %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"mode":"cot"}`), &v); err == nil {
		t.Error("unknown mode in JSON: no error")
	}
	if _, err := ParseFormat("fewshot"); err == nil {
		t.Error("ParseFormat(fewshot): no error")
	}
	if f, err := ParseFormat(" Trained "); err != nil || f != Trained {
		t.Errorf("ParseFormat(Trained) = %v, %v", f, err)
	}
	if _, err := json.Marshal(struct{ M Mode }{"bad"}); err == nil {
		t.Error("marshal invalid mode: no error")
	}
}
