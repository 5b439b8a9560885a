package finetune

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/rs/zerolog"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/planner"
)

// Config is one fine-tuning run. Zero values get the defaults listed.
type Config struct {
	// Data is the rows file: JSONL (or Parquet) with prompt, plan and
	// response per row, as `codeplan extract` writes.
	Data string
	// Read selects prompt/response/id fields and --skip-bad.
	Read dataset.ReadOptions
	// PlanField is the gjson path of the plan ("plan"; in nlplan mode
	// "nl_plan" where a row has it).
	PlanField string
	// Out is the adapter file to write (with Full: the trained model). The
	// step log (.log.csv), the loss plot (.loss.png) and the checkpoint
	// (.ckpt.gguf) are put next to it.
	Out string

	// Full trains every weight of the model instead of a LoRA adapter
	// (F32 master weights, AdamW; weight decay on matrices only) and writes
	// the whole model to Out. The model must be F32 and loaded with
	// llama.ModelOptions.NoMmap. Rank, Alpha, Targets and Merge do not
	// apply. Run trains the loaded model in place: afterwards it holds the
	// trained weights (load the file again to start over).
	Full bool

	// From continues training the LoRA adapter at this path: its A and B
	// matrices are the starting point instead of a fresh initialisation,
	// and its rank, alpha and targets replace Rank, Alpha and Targets
	// (which must then be left zero or equal). It must have been trained on
	// this base (its recorded fingerprint). The AdamW moments, the step
	// count and the schedule start afresh; Out receives the continued
	// adapter and must be another file. Not with Full.
	From string

	Rank    int      // LoRA rank (8)
	Alpha   float64  // LoRA alpha (16); the update is scaled by Alpha/Rank
	Targets []string // matrices to adapt (all of Targets)

	Epochs      int      // passes over the training rows (2)
	LR          float64  // peak learning rate (1e-4)
	Warmup      float64  // warm-up: a fraction of all steps below 1, else steps (0.05)
	Schedule    Schedule // decay after warm-up (cosine)
	Ctx         int      // most tokens per row; longer rows are truncated (512)
	Batch       int      // tokens per forward/backward pass, >= Ctx (512)
	GradAccum   int      // passes per optimizer step (1)
	ValSplit    float64  // share of rows held out for the eval loss (0.05)
	Seed        uint64   // adapter initialisation and data order (42)
	MaxGradNorm float64  // gradient clipping; negative = off (1)
	WeightDecay float64  // AdamW decoupled weight decay (0)
	Threads     int      // CPU threads (all)

	// CheckpointEvery saves a checkpoint every this many optimizer steps
	// (0 = only when interrupted). Resume continues from it exactly.
	CheckpointEvery int
	// Snapshots, with Full, also writes the model after each of this many
	// equal parts of the run but the last (SnapshotPath: 4 gives the model
	// at 25, 50 and 75% of the steps), for learning curves; 0 or 1 = none.
	Snapshots int
	// EvalEvery measures the held-out loss every this many steps (0 = about
	// ten times per run, and always after the last step).
	EvalEvery int
	// Resume continues from the checkpoint next to Out.
	Resume bool
	// Merge, when set, also writes the base model with the adapter folded
	// in to this path (F32/F16/BF16 bases).
	Merge string

	// Mode and Format of the trained text (codeplan, trained); System is an
	// optional system message.
	Mode   planner.Mode
	Format planner.Format
	System string
	// Extraction, when set, trains a plan extractor instead of a planner:
	// each row's prompt and response are rendered with this template as the
	// user message, exactly as `codeplan extract` renders them, and the
	// row's plan is the whole target. Mode must then be direct (the target
	// has no plan phase of its own). A small extractor can so be distilled
	// from a large model's extracted plans.
	Extraction *planner.Template
	// Chat is the model's chat template; nil means the model's own
	// (message.Native), with ChatML as the fallback.
	Chat planner.ChatTemplater

	// Logger receives progress and warnings.
	Logger zerolog.Logger
	// Progress shows a progress bar (or periodic log lines) on ProgressOut
	// (stderr when nil).
	Progress    bool
	ProgressOut io.Writer
	// OnStep, when set, is called after every optimizer step.
	OnStep func(StepStats)
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	if c.Rank == 0 {
		c.Rank = 8
	}
	if c.Alpha == 0 {
		c.Alpha = 16
	}
	if len(c.Targets) == 0 {
		c.Targets = append([]string(nil), Targets...)
	}
	if c.Epochs == 0 {
		c.Epochs = 2
	}
	if c.LR == 0 {
		c.LR = 1e-4
	}
	if c.Schedule == "" {
		c.Schedule = Cosine
	}
	if c.Ctx == 0 {
		c.Ctx = 512
	}
	if c.Batch == 0 {
		c.Batch = max(512, c.Ctx)
	}
	if c.GradAccum == 0 {
		c.GradAccum = 1
	}
	if c.Seed == 0 {
		c.Seed = 42
	}
	if c.MaxGradNorm == 0 {
		c.MaxGradNorm = 1
	}
	if c.Mode == "" {
		c.Mode = planner.CodePlan
	}
	if c.Format == "" {
		c.Format = planner.Trained
	}
	return c
}

// Validate reports the first bad setting as a *ConfigError.
func (c Config) Validate() error {
	bad := func(field string, value any, want string) error {
		return &ConfigError{Field: field, Value: value, Want: want}
	}
	switch {
	case c.Data == "":
		return bad("Data", c.Data, "the rows file to train on")
	case c.Out == "":
		return bad("Out", c.Out, "the path to write")
	case c.Full && c.From != "":
		return bad("From", c.From, "none with Full: it continues a LoRA adapter, and a full run trains the model's own weights")
	case c.Full && c.Merge != "":
		return bad("Merge", c.Merge, "none with Full: merging applies to LoRA adapters, and a full run writes the whole model")
	case c.Rank < 1 || c.Rank > 4096:
		return bad("Rank", c.Rank, "1..4096")
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return bad("Alpha", c.Alpha, "> 0")
	case c.Epochs < 1:
		return bad("Epochs", c.Epochs, ">= 1")
	case !(c.LR > 0) || c.LR > 1:
		return bad("LR", c.LR, "0 < lr <= 1")
	case !(c.Warmup >= 0) || math.IsInf(c.Warmup, 0):
		return bad("Warmup", c.Warmup, ">= 0 (a fraction of the steps, or a step count)")
	case c.Ctx < 8:
		return bad("Ctx", c.Ctx, ">= 8")
	case c.Batch < c.Ctx:
		return bad("Batch", c.Batch, fmt.Sprintf(">= %d, the most tokens per row: a batch must hold the longest row", c.Ctx))
	case c.GradAccum < 1:
		return bad("GradAccum", c.GradAccum, ">= 1")
	case c.ValSplit < 0 || c.ValSplit >= 1 || math.IsNaN(c.ValSplit):
		return bad("ValSplit", c.ValSplit, "0 <= split < 1")
	case math.IsNaN(c.MaxGradNorm) || math.IsInf(c.MaxGradNorm, 0):
		return bad("MaxGradNorm", c.MaxGradNorm, "a finite number (negative = no clipping)")
	case !(c.WeightDecay >= 0 && c.WeightDecay <= 1):
		return bad("WeightDecay", c.WeightDecay, "0..1")
	case c.CheckpointEvery < 0:
		return bad("CheckpointEvery", c.CheckpointEvery, ">= 0 (0 = only when interrupted)")
	case c.Snapshots < 0 || c.Snapshots > 100:
		return bad("Snapshots", c.Snapshots, "0..100")
	case c.Snapshots > 1 && !c.Full:
		return bad("Snapshots", c.Snapshots, "0 without Full: snapshots are whole models")
	case c.EvalEvery < 0:
		return bad("EvalEvery", c.EvalEvery, ">= 0 (0 = about ten times per run)")
	case !c.Mode.Valid():
		return bad("Mode", c.Mode, "direct, nlplan or codeplan")
	case c.Format != planner.Trained && c.Format != planner.Prompted:
		return bad("Format", c.Format, "trained or prompted")
	case c.Extraction != nil && c.Mode != planner.Direct:
		return bad("Mode", c.Mode, "direct with Extraction: an extractor's target is the plan alone")
	}
	if _, err := ParseSchedule(string(c.Schedule)); err != nil {
		return bad("Schedule", c.Schedule, "cosine, linear or constant")
	}
	for _, t := range c.Targets {
		if !isTarget(t) {
			return bad("Targets", t, "some of "+strings.Join(Targets, ","))
		}
	}
	return nil
}

// LogPath is the step log written next to the adapter.
func (c Config) LogPath() string { return stem(c.Out) + ".log.csv" }

// PlotPath is the loss curve written next to the adapter.
func (c Config) PlotPath() string { return stem(c.Out) + ".loss.png" }

// SnapshotPath is the model written at pct percent of the steps (see
// Snapshots).
func (c Config) SnapshotPath(pct int) string { return fmt.Sprintf("%s.at%d.gguf", stem(c.Out), pct) }

// CheckpointPath is where an unfinished run keeps its checkpoint.
func (c Config) CheckpointPath() string { return stem(c.Out) + ".ckpt.gguf" }

func stem(p string) string { return strings.TrimSuffix(p, ".gguf") }

// settings are what a resumed run must share with the run that wrote the
// checkpoint: anything that changes the data order, the graph or the update.
type settings struct {
	data                     string
	rank                     int
	alpha                    float64
	targets                  []string
	epochs                   int
	lr, warmup               float64
	schedule                 Schedule
	ctx, batch, gradAccum    int
	valSplit                 float64
	seed                     uint64
	maxGradNorm, weightDecay float64
	mode, format, systemHash string
	full                     bool
	from                     string // content hash of Config.From; "" for a fresh adapter
}

func (s settings) String() string {
	return fmt.Sprintf("data=%s rank=%d alpha=%g targets=%s epochs=%d lr=%g warmup=%g schedule=%s ctx=%d batch=%d grad_accum=%d val_split=%g seed=%d max_grad_norm=%g weight_decay=%g mode=%s format=%s system=%s",
		s.data, s.rank, s.alpha, strings.Join(s.targets, ","), s.epochs, s.lr, s.warmup, s.schedule, s.ctx, s.batch, s.gradAccum,
		s.valSplit, s.seed, s.maxGradNorm, s.weightDecay, s.mode, s.format, s.systemHash) + s.method() + s.fromText()
}

// fromText is empty for a fresh adapter, so that checkpoints written
// before Config.From existed still resume.
func (s settings) fromText() string {
	if s.from == "" {
		return ""
	}
	return " from=" + s.from
}

// method is empty for LoRA, so that checkpoints of LoRA runs written before
// full training existed still resume.
func (s settings) method() string {
	if s.full {
		return " method=full"
	}
	return ""
}
