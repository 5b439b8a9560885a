package answer

import "testing"

// TestStrict checks that strict extraction reads only marked answers, while
// Final also falls back to the last number, first word or last line.
func TestStrict(t *testing.T) {
	cases := []struct {
		kind       Kind
		output     string
		strict     string // "" = no strict answer
		flexibleOK bool   // Final finds something
	}{
		{Number, "Step 1: 3 + 4 = 7. The answer is 7.", "7", true},
		{Number, "We get 12 apples.\n#### 12", "12", true},
		{Number, "so it is \\boxed{42}", "42", true},
		{Number, "3 + 4 = 7, then 7 * 2 = 14", "", true},                 // flexible: last number
		{Number, "qz8 #x 91kk ,,, 7", "", true},                          // gibberish with digits
		{Math, "Final answer: $\\frac{1}{2}$", "\\frac{1}{2}", true},     // marker span
		{Math, "it is 0.5", "", true},                                    // no marker
		{Choice, "I think (B) is right.\nThe answer is C.", "C", true},   // marker
		{Choice, "B", "", true},                                          // a bare option line
		{YesNo, "Yes, because water is wet.", "", true},                  // first word only
		{YesNo, "Thinking... The answer is no.", "no", true},             // marker
		{Short, "Paris is lovely.\nThe answer is Paris.", "Paris", true}, // marker
		{Short, "blorp zzk", "", true},                                   // last line only
		{Exact, "", "", false},
	}
	for _, c := range cases {
		got, ok := Strict(c.kind, c.output)
		if ok != (c.strict != "") || got != c.strict {
			t.Errorf("Strict(%s, %q) = %q, %v; want %q", c.kind, c.output, got, ok, c.strict)
		}
		if _, ok := Final(c.kind, c.output); ok != c.flexibleOK {
			t.Errorf("Final(%s, %q) found = %v, want %v", c.kind, c.output, ok, c.flexibleOK)
		}
		// Whatever strict finds, flexible finds too and agrees.
		if c.strict != "" {
			if f, _ := Final(c.kind, c.output); f != c.strict {
				t.Errorf("Final(%s, %q) = %q disagrees with Strict %q", c.kind, c.output, f, c.strict)
			}
		}
	}
	if l, ok := StrictChoice("It must be Paris.", []string{"Rome", "Paris"}); ok {
		t.Errorf("StrictChoice read %q from an unmarked sentence", l)
	}
	if l, ok := StrictChoice("The answer is Paris.", []string{"Rome", "Paris"}); !ok || l != "B" {
		t.Errorf("StrictChoice = %q, %v", l, ok)
	}
}
