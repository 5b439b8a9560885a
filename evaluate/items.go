package evaluate

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/codeplan-dev/codeplan/benchdata"
	"github.com/codeplan-dev/codeplan/synth"
)

// DefaultSteps are the step counts of a synthetic benchmark when none are
// given: from trivial to the largest that every kind supports (Order stops
// at 8), spaced so that the accuracy-by-steps curve shows a trend without
// spending most of the run on long problems.
var DefaultSteps = []int{1, 2, 4, 6, 8}

// DefaultPerCell is the number of synthetic items per kind and step count
// when none is given: 5 kinds × 5 step counts × 20 = 500 items, enough
// for a ±4-point 95% interval per mode.
const DefaultPerCell = 20

// synthKinds maps the built-in benchmark names to their problem kinds.
// "synth-text" is the documented name of synth.String, which says what the
// problems are about better than the Go-flavoured "string"; "synth-string"
// is accepted too.
var synthKinds = map[string][]synth.Kind{
	"synth":        synth.Kinds,
	"synth-arith":  {synth.Arith},
	"synth-list":   {synth.List},
	"synth-text":   {synth.String},
	"synth-string": {synth.String},
	"synth-order":  {synth.Order},
	"synth-truth":  {synth.Truth},
}

// SynthNames lists the built-in synthetic benchmark names, for help texts
// and error messages.
func SynthNames() []string {
	return []string{"synth", "synth-arith", "synth-list", "synth-text", "synth-order", "synth-truth"}
}

// IsSynth reports whether name is a built-in synthetic benchmark.
func IsSynth(name string) bool {
	_, ok := synthKinds[strings.ToLower(strings.TrimSpace(name))]
	return ok
}

// ErrUnknownBench is returned (wrapped) for a --bench value that is neither
// a built-in name nor an existing file.
var ErrUnknownBench = errors.New("unknown benchmark")

// Source says which benchmark to evaluate and how to build its item list.
type Source struct {
	// Bench is a built-in synthetic name (see SynthNames) or a file path.
	Bench string
	// Steps, PerCell and Seed shape a synthetic benchmark: PerCell items
	// for every kind and step count (nil / 0 mean DefaultSteps and
	// DefaultPerCell). For the "synth" mix, a step count beyond a kind's
	// synth.MaxSteps is skipped for that kind only.
	Steps   []int
	PerCell int
	Seed    int64
	// Shuffle reorders the items by a hash of (Seed, item id), so the
	// order is reproducible and --limit takes a random-looking subset.
	Shuffle bool
	// File tunes the loading of a benchmark file (field overrides, kind,
	// SkipBad).
	File benchdata.Options
}

// LoadItems builds the whole item list of a benchmark, in evaluation order,
// with the records of a file skipped under File.SkipBad. Unknown names,
// missing files and malformed records are errors that name what is wrong.
func LoadItems(src Source) (benchdata.Loaded, error) {
	var out benchdata.Loaded
	name := strings.TrimSpace(src.Bench)
	if name == "" {
		return out, fmt.Errorf("no benchmark given (want a file or one of %s)", strings.Join(SynthNames(), ", "))
	}
	if kinds, ok := synthKinds[strings.ToLower(name)]; ok {
		items, err := synthItems(kinds, src)
		if err != nil {
			return out, fmt.Errorf("benchmark %s: %w", name, err)
		}
		out.Items = items
	} else {
		if _, err := os.Stat(name); err != nil {
			switch {
			case os.IsNotExist(err) && looksLikeName(name):
				return out, fmt.Errorf("%w %q: not a file, and the built-in benchmarks are %s", ErrUnknownBench, name, strings.Join(SynthNames(), ", "))
			case os.IsNotExist(err):
				return out, fmt.Errorf("benchmark file %s: no such file", name)
			}
			return out, fmt.Errorf("benchmark file %s: %w", name, err)
		}
		var err error
		if out, err = benchdata.LoadDetailed(name, src.File); err != nil {
			return out, err
		}
	}
	if src.Shuffle {
		shuffle(out.Items, src.Seed)
	}
	return out, nil
}

// looksLikeName tells a mistyped built-in name ("synth-arithm") from a
// missing file ("data/gsm8k.jsonl"), so each gets the helpful message.
func looksLikeName(s string) bool {
	return !strings.ContainsAny(s, `/\.`)
}

func synthItems(kinds []synth.Kind, src Source) ([]benchdata.Item, error) {
	steps := src.Steps
	if len(steps) == 0 {
		steps = DefaultSteps
	}
	n := src.PerCell
	if n == 0 {
		n = DefaultPerCell
	}
	if n < 0 {
		return nil, fmt.Errorf("items per kind and step count must be positive, got %d", n)
	}
	if len(kinds) == 1 {
		if err := synth.Validate(steps, kinds); err != nil {
			return nil, err
		}
		return synth.Generate(src.Seed, n, steps, kinds), nil
	}
	// A mix: each kind gets the step counts it supports, so that
	// "--steps 1,10,20" still tests the kinds that go that far.
	var items []benchdata.Item
	for _, k := range steps {
		if !slices.ContainsFunc(kinds, func(kind synth.Kind) bool { return k >= 1 && k <= synth.MaxSteps[kind] }) {
			return nil, fmt.Errorf("step count %d is supported by no synthetic kind (1 to %d)", k, maxSteps(kinds))
		}
	}
	for _, kind := range kinds {
		var ks []int
		for _, k := range steps {
			if k >= 1 && k <= synth.MaxSteps[kind] {
				ks = append(ks, k)
			}
		}
		if len(ks) > 0 {
			items = append(items, synth.Generate(src.Seed, n, ks, []synth.Kind{kind})...)
		}
	}
	return items, nil
}

func maxSteps(kinds []synth.Kind) int {
	m := 0
	for _, k := range kinds {
		m = max(m, synth.MaxSteps[k])
	}
	return m
}

// shuffle orders items by sha256(seed, id): reproducible on every
// platform and Go version, which a resumed run relies on to give each item
// the same position.
func shuffle(items []benchdata.Item, seed int64) {
	key := make(map[string]uint64, len(items))
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(seed))
	for _, it := range items {
		h := sha256.New()
		h.Write(buf[:])
		h.Write([]byte(it.ID))
		key[it.ID] = binary.BigEndian.Uint64(h.Sum(nil))
	}
	sort.SliceStable(items, func(i, j int) bool { return key[items[i].ID] < key[items[j].ID] })
}

// DefaultOut is the report folder used when none is given: "eval-", the
// benchmark's name and the names of the model files, if given ("eval-synth",
// "eval-gsm8k-llama3-8b.Q4_K_M-codeplan-lora" for data/gsm8k.jsonl,
// llama3-8b.Q4_K_M.gguf and codeplan-lora.gguf), so that runs of different
// models or adapters do not share a results file.
func DefaultOut(benchName string, models ...string) string {
	parts := []string{"eval-" + stem(benchName, "bench")}
	for _, m := range models {
		if m != "" {
			parts = append(parts, strings.TrimSuffix(filepath.Base(m), ".gguf"))
		}
	}
	return strings.Join(parts, "-")
}

// stem is the base name of a path without its extensions (fallback if empty).
func stem(path, fallback string) string {
	base := filepath.Base(strings.TrimSpace(path))
	for ext := filepath.Ext(base); ext != ""; ext = filepath.Ext(base) {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "" || base == "." || base == string(filepath.Separator) {
		base = fallback
	}
	return base
}
