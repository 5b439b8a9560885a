package synth

import (
	"fmt"
	"strings"

	"github.com/codeplan-dev/codeplan/answer"
)

// genTruth builds a chain of k statements in the style of BIG-Bench's web
// of lies: the first person's status is given, each next person speaks
// about the previous one, and the question asks about the last. Each
// statement is one reasoning step, and the answer is always determined.
func genTruth(r *rng, k int) problem {
	people := pickNames(r, k+1)
	first := r.intn(2) == 0
	prog := Program{FirstTruthful: &first, Ask: people[k]}
	var b strings.Builder
	fmt.Fprintf(&b, "Every person below either always tells the truth or always lies. %s %s.", people[0], truthVerb(first))
	truthful := first
	for i := 1; i <= k; i++ {
		claim := r.intn(2) == 0
		prog.Statements = append(prog.Statements, Statement{Speaker: people[i], Target: people[i-1], Claim: claim})
		fmt.Fprintf(&b, " %s says %s %s.", people[i], people[i-1], truthVerb(claim))
		// A truth-teller's claim is right, a liar's is wrong.
		truthful = claim == truthful
	}
	fmt.Fprintf(&b, " Does %s tell the truth?", people[k])
	gold := "no"
	if truthful {
		gold = "yes"
	}
	return problem{question: b.String(), gold: gold, kind: answer.YesNo, program: prog}
}

func truthVerb(truthful bool) string {
	if truthful {
		return "tells the truth"
	}
	return "lies"
}
