package answer

import "testing"

// extractCase is one realistic model output and the answer Final must
// find in it.
type extractCase struct {
	name   string
	kind   Kind
	output string
	want   string
	ok     bool
}

var extractCases = []extractCase{
	// ---- Number (GSM8K style) ----
	{"gsm8k hashes", Number, "Tomas picked 36/3 = 12 apples on Tuesday.\nTomas picked 36+12 = 48 apples on the two days.\n#### 48", "48", true},
	{"answer is trailing period", Number, "She has 5 + 7 = 12 apples. The answer is 12.", "12", true},
	{"answer is with dollars and cents", Number, "Total cost: 3 * $4.50 = $13.50.\nThe answer is $13.50.", "13.5", true},
	{"thousands separator", Number, "So the company earns 1,250 * 8 = 10,000 dollars.\nThe answer is 10,000.", "10000", true},
	{"thousands with decimals", Number, "The answer is $1,000.00", "1000", true},
	{"negative", Number, "The temperature drops from 5 to -3 degrees.\nThe answer is -3.", "-3", true},
	{"negative after dollar", Number, "Her balance is now -$45.\nFinal answer: -$45", "-45", true},
	{"dollar then negative", Number, "The answer is $-12.", "-12", true},
	{"unicode minus", Number, "The answer is −7.", "-7", true},
	{"fraction", Number, "Each friend gets 3/4 of a pizza. The answer is 3/4.", "0.75", true},
	{"latex fraction in boxed", Number, `Each gets \boxed{\frac{1}{3}} of the cake.`, "1/3", true},
	{"boxed dfrac", Number, `$\boxed{\dfrac{5}{2}}$`, "2.5", true},
	{"percent", Number, "The discount is 25%. The answer is 25%.", "25", true},
	{"percent word", Number, "The answer is 40 percent.", "40", true},
	{"scientific e", Number, "The answer is 1.5e3.", "1500", true},
	{"scientific times", Number, `The answer is $2 \times 10^{3}$.`, "2000", true},
	{"magnitude word", Number, "The city has 2.5 million people.\nThe answer is 2.5 million.", "2500000", true},
	{"units after number", Number, "The answer is 12 apples.", "12", true},
	{"km", Number, "They travel 5 km each day.\nAnswer: 5 km", "5", true},
	{"restated answer last wins", Number, "The answer is 16. Wait, I forgot the 2 eggs she eats.\nThe answer is 14.", "14", true},
	{"early answer then hashes", Number, "Answer: 10\nLet me double check: 4 + 6 = 10.\n#### 10", "10", true},
	{"expression after marker", Number, "The answer is 3 + 4 = 7.", "7", true},
	{"expression with multiplication", Number, "The answer is 6 × 7 = 42 marbles.", "42", true},
	{"expression without result is no answer", Number, "The answer is 5 + 3.\nThat is all.", "3", true},
	{"variable assignment", Number, "Answer: x = 15", "15", true},
	{"no marker last number", Number, "She buys 3 packs of 12 eggs, so she has 3 * 12 = 36 eggs.", "36", true},
	{"no marker trailing sentence", Number, "James runs 3 sprints 3 times a week, 60 meters each: 3*3*60 = 540 meters a week.", "540", true},
	{"answer on next line", Number, "Final answer:\n\n  42\n", "42", true},
	{"bold markdown", Number, "**Final Answer:** **18**", "18", true},
	{"the final answer is boxed", Number, `The final answer is $\boxed{204}$. I hope it is correct.`, "204", true},
	{"boxed beats earlier marker", Number, "The answer is 5.\nActually recomputing... \\boxed{6}", "6", true},
	{"boxed with text unit", Number, `\boxed{18 \text{ dollars}}`, "18", true},
	{"boxed with commas", Number, `\boxed{1,\!234}`, "1234", true},
	{"boxed non-number returned as is", Number, `\boxed{x+1}`, "x+1", true},
	{"word number after marker", Number, "The answer is twelve.", "12", true},
	{"hyphenated word number", Number, "The answer is twenty-five.", "25", true},
	{"decimal leading dot", Number, "The answer is .5", "0.5", true},
	{"trailing zero decimal", Number, "The answer is 7.50 dollars.", "7.5", true},
	{"mixed number", Number, "She needs 1 1/2 cups.\nThe answer is 1 1/2.", "1.5", true},
	{"date not a fraction", Number, "On 12/25/2020 he had 8 cookies.", "8", true},
	{"identifier digits ignored", Number, "Step 1: x2 is the variable name. The value is 9", "9", true},
	{"answer is colon", Number, "The answer is: 64", "64", true},
	{"answer to the question is", Number, "So the answer to the question is 31 students.", "31", true},
	{"answer in parens unit", Number, "Answer (in dollars): 250", "250", true},
	{"hashes with dollars", Number, "#### $1,200", "1200", true},
	{"minerva number", Number, "Final Answer: The final answer is 45. I hope it is correct.", "45", true},
	{"power is its value", Number, "The answer is 10^3", "1000", true},
	{"power in braces", Number, `The answer is $2^{10}$.`, "1024", true},
	{"unit exponent is not a number", Number, "The room is 5 m by 5 m, so the area is 25 m^2", "25", true},
	{"negative parenthesised", Number, "The answer is -(3).", "-3", true},
	{"subtraction before parenthesis", Number, "Answer: 10-(3) = 7", "7", true},
	{"empty box ignored", Number, `So 6 cookies. \boxed{}`, "6", true},
	{"percent decimal", Number, "The answer is 12.5%.", "12.5", true},
	{"answer then explanation number", Number, "The answer is 0.5 kg, i.e. 500 g.", "0.5", true},
	{"result not a marker but last number", Number, "Result: 42", "42", true},
	{"step labels are not answers", Number, "Answer: Step 1: 3 + 4 = 7. Step 2: 7 * 2 = 14.\nStep 3: done", "14", true},
	{"echoed answer prompt then reasoning", Number, "Answer: Let's compute. 3 * 4 = 12, plus 5 is 17.", "17", true},
	{"no number at all", Number, "I cannot solve this problem.", "", false},
	{"empty output", Number, "", "", false},
	{"crlf line ends", Number, "3 + 4 = 7\r\nThe answer is 7.\r\n", "7", true},
	{"marker without number falls back", Number, "The answer is below.\n2 + 2 = 4", "4", true},
	{"equals restatement", Number, "Total = 8 + 9 = 17", "17", true},
	{"subtraction not negative", Number, "The answer is 20-5=15", "15", true},
	{"range not negative", Number, "She read pages 10-25, so 16 pages.", "16", true},

	// ---- Math (MATH style) ----
	{"boxed integer", Math, `So $x = 4$. Therefore the answer is $\boxed{4}$.`, "4", true},
	{"boxed nested braces", Math, `Thus $\boxed{\frac{\sqrt{3}}{2}}$.`, `\frac{\sqrt{3}}{2}`, true},
	{"last boxed wins", Math, `We first get \boxed{2}, but correcting, \boxed{3}.`, "3", true},
	{"fbox", Math, `\fbox{12}`, "12", true},
	{"boxed without braces", Math, `The answer is $\boxed 5$.`, "5", true},
	{"boxed interval", Math, `The domain is $\boxed{\left(-\infty, 2\right]}$`, `\left(-\infty, 2\right]`, true},
	{"unbalanced last boxed falls back to earlier", Math, `\boxed{7} ... and finally \boxed{8`, "7", true},
	{"escaped braces inside boxed", Math, `\boxed{\{1,2\}}`, `\{1,2\}`, true},
	{"boxed text", Math, `The day is \boxed{\text{Tuesday}}.`, `\text{Tuesday}`, true},
	{"answer is inline math", Math, `The answer is $\frac{1}{2}$ of the pie.`, `\frac{1}{2}`, true},
	{"final answer plain", Math, "Final answer: 3\\sqrt{2}.", `3\sqrt{2}`, true},
	{"math fallback last number", Math, "So the area is 50.", "50", true},
	{"minerva format", Math, "Final Answer: The final answer is $\\frac{3}{5}$. I hope it is correct.", `\frac{3}{5}`, true},
	{"inline assignment", Math, "The answer is $x=5$.", "x=5", true},
	{"display math after marker", Math, "Final answer: \\[ \\sqrt{7} \\]", `\sqrt{7}`, true},
	{"empty box falls back", Math, `The answer is \boxed{}`, "", false},
	{"earlier box when last empty", Math, `$\boxed{2}$ and \boxed{}`, "2", true},
	{"paren math after marker", Math, `The answer is \(\frac{\pi}{4}\).`, `\frac{\pi}{4}`, true},
	{"math nothing", Math, "Hmm.", "", false},
	{"boxedfoo not boxed", Math, `\boxedfoo{1} and 2`, "2", true},

	// ---- Choice ----
	{"answer is paren letter", Choice, "Let's compute: 12 + 30 = 42, which is option (C).\nSo the answer is (C).", "C", true},
	{"answer colon lower", Choice, "Answer: b", "B", true},
	{"answer is letter with text", Choice, "The answer is B) 42 apples.", "B", true},
	{"letter then because", Choice, "The answer is D because the others are too large.", "D", true},
	{"article not option", Choice, "The answer is a triangle.", "", false},
	{"only letter", Choice, "C", "C", true},
	{"only paren letter", Choice, "(E)", "E", true},
	{"option line first", Choice, "B) 42\nExplanation: 6 times 7 is 42.", "B", true},
	{"correct option is", Choice, "After checking each, the correct option is A.", "A", true},
	{"boxed letter", Choice, `$\boxed{\text{(D)}}$`, "D", true},
	{"restated choice", Choice, "The answer is (A). Hmm, wait: 3*4 is 12 not 14.\nThe answer is (B).", "B", true},
	{"option word", Choice, "Answer: option C", "C", true},
	{"discussion without decision", Choice, "Option (A) is too small and (B) is too large.\nI am not sure.", "", false},
	{"I choose", Choice, "I choose E.", "E", true},
	{"pronoun I after marker", Choice, "The answer is I think (B).", "", false},
	{"first of two options", Choice, "The answer is (A) or (B).", "A", true},
	{"bold answer", Choice, "**Answer: C**", "C", true},
	{"answer marker then option marker", Choice, "Answer: The correct option is D.", "D", true},
	{"letter I is not a pronoun here", Choice, "I think it's hard. I will try.", "", false},

	// ---- YesNo (StrategyQA) ----
	{"yes marker", YesNo, "Hamsters are prey animals. So the answer is yes.", "yes", true},
	{"no marker", YesNo, "A pear weighs less than water displaced... Thus, the answer is no.", "no", true},
	{"first word yes", YesNo, "Yes, because the Eiffel Tower is in Paris.", "yes", true},
	{"first word no", YesNo, "No. Penguins cannot fly.", "no", true},
	{"true maps to yes", YesNo, "Answer: True", "yes", true},
	{"false maps to no", YesNo, "The answer is false.", "no", true},
	{"last line only", YesNo, "The bridge opened in 1931.\nThe tower came later.\nNo", "no", true},
	{"no in prose is not an answer", YesNo, "There is no evidence either way, and it is hard to tell.", "", false},
	{"restated yes no", YesNo, "The answer is yes. Actually, reconsidering, the answer is no.", "no", true},
	{"boxed yes", YesNo, `\boxed{\text{Yes}}`, "yes", true},
	{"no problem opener", YesNo, "No problem! Penguins can't fly. So the answer is yes.", "yes", true},
	{"yesterday is not yes", YesNo, "Yesterday it rained.", "", false},

	// ---- Short (HotpotQA / MuSiQue) ----
	{"short answer is", Short, "The director of Jaws is Steven Spielberg, born in Cincinnati.\nSo the answer is Cincinnati.", "Cincinnati", true},
	{"short answer with because", Short, "The answer is Paris because it is the capital.", "Paris", true},
	{"short abbreviation kept", Short, "The answer is St. Louis.", "St. Louis", true},
	{"short initials kept", Short, "The answer is J. K. Rowling.", "J. K. Rowling", true},
	{"short single line", Short, "Barack Obama", "Barack Obama", true},
	{"short last line", Short, "Both were born in 1961.\nThe older one is:\nBarack Obama", "Barack Obama", true},
	{"short quoted", Short, `Answer: "The Beatles"`, "The Beatles", true},
	{"short bold", Short, "Final answer: **1998**.", "1998", true},
	{"short empty", Short, "   \n  ", "", false},

	// ---- Exact (BBH) ----
	{"bbh option", Exact, "Let's think step by step. ... So the answer is (A).", "(A)", true},
	{"bbh valid", Exact, "So the answer is invalid.", "invalid", true},
	{"bbh dyck", Exact, "So the answer is ] ) }.", "] ) }", true},
	{"bbh word sort", Exact, "So the answer is apple banana cherry.", "apple banana cherry", true},
	{"answer that is a connector word", Exact, "So the answer is is.", "is", true},
	{"answer is equals sign", Short, "The answer is = 5", "5", true},
	{"bbh option with text", Exact, "So the answer is (A) Monday.", "(A) Monday", true},
	{"bbh bare", Exact, "True", "True", true},
}

func TestFinal(t *testing.T) {
	for _, c := range extractCases {
		t.Run(string(c.kind)+"/"+c.name, func(t *testing.T) {
			got, ok := Final(c.kind, c.output)
			if got != c.want || ok != c.ok {
				t.Errorf("Final(%s, %q) = (%q, %v), want (%q, %v)", c.kind, c.output, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestFinalChoiceByText(t *testing.T) {
	choices := []string{"12", "120", "dark red", "red"}
	cases := []struct {
		output string
		want   string
		ok     bool
	}{
		{"The answer is 120.", "B", true},
		{"The answer is 12 apples.", "A", true},
		{"The answer is dark red.", "C", true},
		{"The answer is red.", "D", true},
		{"The answer is it is dark red", "C", true},
		{"The answer is not 12, it is 120.", "", false},
		{"120", "B", true},
		{"The answer is (D).", "D", true},
		{"The answer is blue.", "", false},
	}
	for _, c := range cases {
		got, ok := FinalChoice(c.output, choices)
		if got != c.want || ok != c.ok {
			t.Errorf("FinalChoice(%q) = (%q, %v), want (%q, %v)", c.output, got, ok, c.want, c.ok)
		}
	}
}

func TestFinalUnknownKind(t *testing.T) {
	if got, ok := Final(Kind("nope"), "The answer is 3."); ok || got != "" {
		t.Errorf("unknown kind extracted %q", got)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds {
		got, err := ParseKind(" " + string(k) + " ")
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	if got, err := ParseKind("MATH"); err != nil || got != Math {
		t.Errorf("ParseKind(MATH) = %q, %v", got, err)
	}
	if _, err := ParseKind("numbr"); err == nil {
		t.Error("ParseKind(numbr) should fail")
	}
}
