package inference

import (
	"fmt"

	"github.com/codeplan-dev/codeplan/llama/lm"
)

// FinishContextFull is the finish that generate and eval write for a phase
// that stopped because its sequence's share of the context filled before
// the phase's token limit (lm.PhaseOutput.ContextFull). The context cut it,
// not the model, so it is not "length" (did not terminate). extract uses the
// same word as a reject reason for the same event.
const FinishContextFull = "context_full"

// ContextCut says how the context cut a request short (see CutByContext).
type ContextCut struct {
	// Phase is the first phase cut: "plan" or "answer".
	Phase string
	// Limit is that phase's token limit.
	Limit int
	// PromptTokens and Generated are the tokens of the request's prefixes
	// and the tokens generated over all phases.
	PromptTokens, Generated int
	// Need is the tokens a sequence must hold for every phase to reach its
	// limit: the prefixes, every phase's limit, and the one token the
	// engine keeps free.
	Need int
}

// CutByContext reports whether a phase of r, the result of req, stopped
// because the sequence's share of the context filled before its token
// limit. If so it marks each such phase FinishContextFull in a (r as read
// by FromResult), in place of "length".
func CutByContext(req lm.Request, r lm.Result, a *Answer) (ContextCut, bool) {
	var cut ContextCut
	found := false
	for i, ph := range r.Phases {
		if !ph.ContextFull {
			continue
		}
		name := "answer"
		if a.Mode.HasPlan() && i == 0 {
			name, a.PlanFinish = "plan", FinishContextFull
		} else {
			a.Finish = FinishContextFull
		}
		if !found && i < len(req.Phases) {
			cut.Phase, cut.Limit = name, req.Phases[i].MaxTokens
		}
		found = true
	}
	if !found {
		return cut, false
	}
	cut.PromptTokens, cut.Generated = r.PromptTokens, r.GeneratedTokens()
	cut.Need = r.PromptTokens + 1
	for _, p := range req.Phases {
		cut.Need += p.MaxTokens
	}
	return cut, true
}

// Detail says what happened, for the row's error: seqContext is the
// tokens a sequence held and fit the --ctx that would hold Need (either 0
// when unknown).
func (c ContextCut) Detail(seqContext, fit int) string {
	held := ""
	if seqContext > 0 {
		held = fmt.Sprintf(" (%d tokens)", seqContext)
	}
	s := fmt.Sprintf("%s: the row's share of the context%s filled after %d prompt and %d generated tokens, before the %s reached its limit of %d tokens",
		FinishContextFull, held, c.PromptTokens, c.Generated, c.Phase, c.Limit)
	if fit > 0 {
		return s + fmt.Sprintf(": --ctx %d would fit it", fit)
	}
	return s + ": raise --ctx or lower --parallel"
}
