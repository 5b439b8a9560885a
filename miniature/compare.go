package miniature

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/codeplan-dev/codeplan/stats"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/synth"
)

// Row is what the comparison reads of a synth row (the held-out split).
type Row struct {
	ID          string `json:"id"`
	K           int    `json:"k"`
	Plan        string `json:"plan"`
	NLPlan      string `json:"nl_plan"`
	ControlPlan string `json:"control_plan"`
	Response    string `json:"response"`
}

// Result is what the comparison reads of one eval result row.
type Result struct {
	ItemID  string `json:"item_id"`
	Steps   int    `json:"steps"`
	Plan    string `json:"plan"`
	Output  string `json:"output"`
	Correct bool   `json:"correct"`
}

// Arm is one trained model's eval results. Name is direct, nlplan,
// codeplan or control; a name with "@PCT" (codeplan@25) is a learning-curve
// point of that arm.
type Arm struct {
	Name    string
	Dir     string
	Results map[string]Result
}

// ReadRows reads a synth rows file.
func ReadRows(path string) ([]Row, error) {
	var rows []Row
	err := eachLine(path, func(line []byte) error {
		var r Row
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

// ReadArm reads DIR/results.jsonl of an eval run.
func ReadArm(name, dir string) (*Arm, error) {
	a := &Arm{Name: name, Dir: dir, Results: map[string]Result{}}
	err := eachLine(filepath.Join(dir, "results.jsonl"), func(line []byte) error {
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		a.Results[r.ItemID] = r
		return nil
	})
	return a, err
}

// eachLine calls fn with every non-blank line of the JSONL file path. A
// device, FIFO or folder is refused (dataset.CheckInputFile) rather than
// read or blocked on.
func eachLine(path string, fn func([]byte) error) error {
	if err := dataset.CheckInputFile(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// Cell is an accuracy with its Wilson interval.
type Cell struct {
	K       int     `json:"k"` // 0 = all
	N       int     `json:"n"`
	Correct int     `json:"correct"`
	Acc     float64 `json:"acc"`
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
}

// Pair is the paired comparison of arm A against arm B on the same items.
type Pair struct {
	A, B     string
	K        int     `json:"k"` // 0 = all
	N        int     `json:"n"`
	Diff     float64 `json:"diff"` // accuracy of A minus B
	Lo       float64 `json:"lo"`
	Hi       float64 `json:"hi"`
	OnlyA    int     `json:"only_a"` // right under A only
	OnlyB    int     `json:"only_b"`
	P        float64 `json:"mcnemar_p"`
	Primary  bool    `json:"preregistered"`
	Separate bool    `json:"separate"` // the bootstrap interval excludes 0
}

// PlanStats are how an arm's generated plans relate to the gold plans and
// to its own responses.
type PlanStats struct {
	Arm       string `json:"arm"`
	N         int    `json:"n"`
	EqualGold int    `json:"equal_gold"`
	// Follows counts responses whose steps (the relations they state, in
	// order) are those of their own plan's branch; Parsed counts plans whose
	// steps could be read.
	Follows int `json:"follows"`
	Parsed  int `json:"parsed"`
}

// Summary is the whole comparison.
type Summary struct {
	Items    int                `json:"items"`
	Accuracy map[string][]Cell  `json:"accuracy"`
	Pairs    []Pair             `json:"pairs"`
	Plans    []PlanStats        `json:"plans"`
	Curves   map[string][]Point `json:"curves,omitempty"`
	Baseline *Baseline          `json:"baseline,omitempty"`
}

// Point is one learning-curve point: an arm's accuracy at Pct% of training.
type Point struct {
	Pct  int  `json:"pct"`
	Cell Cell `json:"cell"`
}

// preregistered are the comparisons fixed before the run (issue 23): code
// plan against direct (the main measure), against NL plan and against the
// control.
var preregistered = [][2]string{{"codeplan", "direct"}, {"codeplan", "nlplan"}, {"codeplan", "control"}}

// Compare builds the summary over rows. Every main arm (no "@") must have a
// result for every row; curve arms are scored on the rows they have.
func Compare(rows []Row, arms []*Arm, resamples int) (*Summary, error) {
	s := &Summary{Items: len(rows), Accuracy: map[string][]Cell{}, Curves: map[string][]Point{}}
	ks := map[int]bool{}
	for _, r := range rows {
		ks[r.K] = true
	}
	var kList []int
	for k := range ks {
		kList = append(kList, k)
	}
	sort.Ints(kList)
	var main []*Arm
	for _, a := range arms {
		name, pct, curve := strings.Cut(a.Name, "@")
		if curve {
			p, err := strconv.Atoi(pct)
			if err != nil {
				return nil, fmt.Errorf("arm %q: want NAME@PERCENT", a.Name)
			}
			s.Curves[name] = append(s.Curves[name], Point{Pct: p, Cell: cell(rows, a, 0)})
			continue
		}
		for _, r := range rows {
			if _, ok := a.Results[r.ID]; !ok {
				return nil, fmt.Errorf("arm %s (%s) has no result for item %s", a.Name, a.Dir, r.ID)
			}
		}
		main = append(main, a)
		cells := []Cell{cell(rows, a, 0)}
		for _, k := range kList {
			cells = append(cells, cell(rows, a, k))
		}
		s.Accuracy[a.Name] = cells
		s.Plans = append(s.Plans, planStats(rows, a))
	}
	for name, pts := range s.Curves {
		has100 := false
		for _, p := range pts {
			has100 = has100 || p.Pct == 100
		}
		// Without a 100% point of its own (evaluated on the curve's split),
		// the curve ends at the arm's main result (the same split when the
		// main split is validation).
		if cells, ok := s.Accuracy[name]; ok && !has100 {
			pts = append(pts, Point{Pct: 100, Cell: cells[0]})
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].Pct < pts[j].Pct })
		s.Curves[name] = pts
	}
	for i, a := range main {
		for _, b := range main[i+1:] {
			x, y := a, b
			primary := false
			for _, p := range preregistered {
				if p[0] == b.Name && p[1] == a.Name {
					x, y = b, a
				}
				if (p[0] == x.Name && p[1] == y.Name) || (p[1] == x.Name && p[0] == y.Name) {
					primary = true
				}
			}
			for _, k := range append([]int{0}, kList...) {
				s.Pairs = append(s.Pairs, pair(rows, x, y, k, primary, resamples))
			}
		}
	}
	return s, nil
}

func cell(rows []Row, a *Arm, k int) Cell {
	c := Cell{K: k}
	for _, r := range rows {
		res, ok := a.Results[r.ID]
		if !ok || (k != 0 && r.K != k) {
			continue
		}
		c.N++
		if res.Correct {
			c.Correct++
		}
	}
	if c.N > 0 {
		c.Acc = float64(c.Correct) / float64(c.N)
	}
	w := stats.Wilson(c.Correct, c.N, stats.Z95)
	c.Lo, c.Hi = w.Low, w.High
	return c
}

func pair(rows []Row, a, b *Arm, k int, primary bool, resamples int) Pair {
	p := Pair{A: a.Name, B: b.Name, K: k, Primary: primary}
	var xa, xb []bool
	for _, r := range rows {
		if k != 0 && r.K != k {
			continue
		}
		ra, rb := a.Results[r.ID].Correct, b.Results[r.ID].Correct
		xa, xb = append(xa, ra), append(xb, rb)
		if ra && !rb {
			p.OnlyA++
		}
		if rb && !ra {
			p.OnlyB++
		}
	}
	p.N = len(xa)
	p.Diff, p.Lo, p.Hi = Bootstrap(xa, xb, resamples, uint64(1000+k))
	p.P = stats.McNemarExact(p.OnlyA, p.OnlyB)
	p.Separate = p.Lo > 0 || p.Hi < 0
	return p
}

// goldPlan is the plan an arm was trained to write for a row.
func goldPlan(arm string, r Row) (string, bool) {
	switch arm {
	case "codeplan":
		return r.Plan, true
	case "nlplan":
		return r.NLPlan, true
	case "control":
		return r.ControlPlan, true
	}
	return "", false
}

var (
	relWord  = regexp.MustCompile(`[a-z]+`)
	respStep = regexp.MustCompile(`^[A-Z][a-z]+'s ([a-z]+) is `)
	relNames = func() map[string]bool {
		m := map[string]bool{}
		for _, r := range synth.Relations {
			m[r.Name] = true
		}
		return m
	}()
)

// planSteps reads the relations a plan follows, in order: those before its
// else branch (for branch problems the test's relation first) and those of
// the else branch.
func planSteps(plan string) (head, tail []string) {
	cut := len(plan)
	for _, m := range []string{"else:", "Otherwise"} {
		if i := strings.Index(plan, m); i >= 0 && i < cut {
			cut = i
		}
	}
	rels := func(s string) []string {
		var out []string
		for _, w := range relWord.FindAllString(s, -1) {
			if relNames[w] {
				out = append(out, w)
			}
		}
		return out
	}
	return rels(plan[:cut]), rels(plan[cut:])
}

// responseSteps reads the relations a response states, in order.
func responseSteps(resp string) []string {
	var out []string
	for _, line := range strings.Split(resp, "\n") {
		if m := respStep.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// follows reports whether a response's steps are those of its plan: the
// plan's relations in order, or for a plan with an else branch, the test's
// relation then either branch's relations.
func follows(plan, resp string) (ok, parsed bool) {
	head, tail := planSteps(plan)
	if len(head) == 0 {
		return false, false
	}
	got := strings.Join(responseSteps(resp), " ")
	if strings.Join(head, " ") == got {
		return true, true
	}
	if len(tail) > 0 && strings.Join(append([]string{head[0]}, tail...), " ") == got {
		return true, true
	}
	return false, true
}

func planStats(rows []Row, a *Arm) PlanStats {
	ps := PlanStats{Arm: a.Name}
	for _, r := range rows {
		res := a.Results[r.ID]
		gold, ok := goldPlan(a.Name, r)
		if !ok {
			return ps
		}
		ps.N++
		if strings.TrimSpace(res.Plan) == strings.TrimSpace(gold) {
			ps.EqualGold++
		}
		if f, parsed := follows(res.Plan, res.Output); parsed {
			ps.Parsed++
			if f {
				ps.Follows++
			}
		}
	}
	return ps
}

// Markdown writes the summary as the report's tables.
func (s *Summary) Markdown(w io.Writer, title string) {
	fmt.Fprintf(w, "# %s\n\n%d held-out items. Accuracy with 95%% Wilson intervals:\n\n", title, s.Items)
	var names []string
	for _, n := range []string{"direct", "nlplan", "codeplan", "control"} {
		if _, ok := s.Accuracy[n]; ok {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return
	}
	fmt.Fprintf(w, "| k | %s |\n|:--|%s\n", strings.Join(names, " | "), strings.Repeat("--:|", len(names)))
	for i, c := range s.Accuracy[names[0]] {
		label := strconv.Itoa(c.K)
		if c.K == 0 {
			label = "all"
		}
		fmt.Fprintf(w, "| %s (n=%d) |", label, c.N)
		for _, n := range names {
			x := s.Accuracy[n][i]
			fmt.Fprintf(w, " %.1f%% [%.0f, %.0f] |", 100*x.Acc, 100*x.Lo, 100*x.Hi)
		}
		fmt.Fprintln(w)
	}
	if len(s.Pairs) > 0 {
		s.pairTable(w)
	}
	s.rest(w)
}

func (s *Summary) pairTable(w io.Writer) {
	fmt.Fprintf(w, "\nPaired comparisons (A − B in points, 95%% paired bootstrap interval; exact McNemar p; * = pre-registered; ! = interval excludes 0):\n\n")
	fmt.Fprintf(w, "| A vs B | k | diff | interval | A only / B only | McNemar p |\n|:--|:--|--:|:--|--:|--:|\n")
	for _, p := range s.Pairs {
		label := strconv.Itoa(p.K)
		if p.K == 0 {
			label = "all"
		}
		mark := ""
		if p.Primary {
			mark += "*"
		}
		if p.Separate {
			mark += "!"
		}
		fmt.Fprintf(w, "| %s%s vs %s | %s | %+.1f | [%+.1f, %+.1f] | %d / %d | %.3g |\n",
			mark, p.A, p.B, label, 100*p.Diff, 100*p.Lo, 100*p.Hi, p.OnlyA, p.OnlyB, p.P)
	}
}

func (s *Summary) rest(w io.Writer) {
	planArms := 0
	for _, p := range s.Plans {
		if p.N > 0 {
			planArms++
		}
	}
	if planArms > 0 {
		s.planTable(w)
	}
	s.curvesAndBaseline(w)
}

func (s *Summary) planTable(w io.Writer) {
	fmt.Fprintf(w, "\nPlans (generated plan equal to the gold plan; response follows its own plan's steps, of the plans whose steps could be read):\n\n")
	fmt.Fprintf(w, "| arm | plans | equal gold | response follows plan |\n|:--|--:|--:|--:|\n")
	for _, p := range s.Plans {
		if p.N == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.1f%% | %d of %d (%.1f%%) |\n", p.Arm, p.N, pct(p.EqualGold, p.N), p.Follows, p.Parsed, pct(p.Follows, p.Parsed))
	}
}

func (s *Summary) curvesAndBaseline(w io.Writer) {
	if len(s.Curves) > 0 {
		fmt.Fprintf(w, "\nLearning curves (accuracy at a share of the training steps, same items):\n\n| arm |")
		var pcts []int
		for _, pts := range s.Curves {
			for _, p := range pts {
				if !containsInt(pcts, p.Pct) {
					pcts = append(pcts, p.Pct)
				}
			}
		}
		sort.Ints(pcts)
		for _, p := range pcts {
			fmt.Fprintf(w, " %d%% |", p)
		}
		fmt.Fprintf(w, "\n|:--|%s\n", strings.Repeat("--:|", len(pcts)))
		for _, n := range []string{"direct", "nlplan", "codeplan", "control"} {
			pts, ok := s.Curves[n]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s |", n)
			for _, p := range pcts {
				v := "–"
				for _, q := range pts {
					if q.Pct == p {
						v = fmt.Sprintf("%.1f%%", 100*q.Cell.Acc)
					}
				}
				fmt.Fprintf(w, " %s |", v)
			}
			fmt.Fprintln(w)
		}
	}
	if b := s.Baseline; b != nil {
		fmt.Fprintf(w, "\nPrompt-blind baseline: an interpolated %d-gram model of the training responses' tokens (no prompt) scores %.3f nats per token on these items' responses (%d tokens, end of turn included).\n",
			b.Order, b.NatsPerToken, b.Tokens)
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
