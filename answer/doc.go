// Package answer finds final answers in model outputs and scores them
// against gold answers, for every answer format codeplan evaluates (see
// Kind). Accuracy numbers are only as good as this extraction, so it
// prefers explicit answer markers, and it refuses to guess where a guess
// could turn a wrong answer into a right one.
//
// # Extraction order
//
// Final tries places in a fixed order and returns the first answer it
// finds. "Marker" means a phrase such as "The answer is", "Final answer:",
// "answer =" or "Answer (in dollars):"; when there are several, the last
// one wins, so an answer stated early and restated later is read from the
// restatement. A marker's span is the rest of its line (or the next
// non-empty line when the marker ends its line). For Number and Math, a
// span that starts with working ("Answer: Step 1: ...", "Answer: Let's
// ...") is skipped.
//
//   - Number: the last \boxed{} / \fbox{} (a boxed non-number is returned
//     as is and will score wrong); then the last "####"; then markers;
//     then the last number anywhere in the output. In a span the first
//     number is the answer, unless it opens an expression ("3 + 4 = 7"),
//     when the number after the last "=" is; an expression without "=" is
//     no answer. Spelled-out numbers ("twelve") count only right after a
//     marker. Numbers may carry thousands commas, "$", units ("12
//     apples"), signs, decimals, fractions ("3/4"), mixed numbers ("1
//     1/2"), percent signs (dropped: "25%" is 25), scientific notation
//     ("1.5e3", "2 × 10^5"), powers ("2^{10}"), magnitude words ("3
//     million") and LaTeX (\frac{3}{4}, "1{,}000"). Digits in exponents and
//     subscripts ("m^2", "a_3") and inside identifiers ("x2") are not
//     numbers, nor are dates. The result is canonical: "1,000.00" gives
//     "1000", "3/4" gives "0.75", one third gives "1/3".
//   - Math: the last balanced \boxed{} / \fbox{} (nested braces allowed);
//     then "####" and markers, taking the first $...$ / \(...\) segment of
//     the span if there is one, else its first sentence; then the last
//     number anywhere.
//   - Choice: a letter A-J at the start of the last \boxed{}; then
//     markers, including "option is", "I choose", "correct choice:"; then
//     the last, else the first, non-empty line when it is only an option
//     ("B", "(B)", "B.") or starts with an option label ("(B) 42",
//     "B) 42"). A capital letter counts unless more letters follow it; a
//     lower-case one only before punctuation or the end, so that "the
//     answer is a triangle" is not option A. FinalChoice additionally
//     accepts text that names exactly one option.
//   - YesNo: yes/no/true/false first in the last \boxed{}, then first in a
//     marker span, then as the first word of the output, then as the
//     whole last line. Words elsewhere in the text are never read: "there
//     is no evidence" says nothing about the answer.
//   - Short and Exact: the first sentence of the last marker span, minus a
//     trailing justification ("because ...", "which is ..."); then the
//     last \boxed{}; then the last non-empty line. Markdown, quotes and a
//     trailing period are removed.
//
// # Scoring
//
// Score compares a prediction with a gold answer. Number and Math values
// are exact rationals: "0.5", "1/2" and "\frac{1}{2}" are equal; a
// non-integer is also equal to a value within a relative 1e-6 (rounded
// decimals), but two different integers are never equal. Math answers are
// normalised (delimiters, \left/\right, \dfrac, spacing, ^\circ, \%, \$,
// \text{} units, "x =" prefixes) and compared as strings, values, tuples
// and intervals element-wise, and sets and bare comma lists as multisets.
// Irrational forms such as \sqrt{2} are compared only symbolically, never
// against a decimal approximation. Short answers use SQuAD normalisation
// (lower-case, no punctuation, no a/an/the) with exact match and token F1;
// Exact answers are compared case-insensitively without a trailing period,
// with "A" equal to "(A)", "(A) Monday" equal to a gold "(A)", and equal
// numbers (or a spelled-out number alone, "eight") equal.
package answer
