package finetune

import (
	"errors"
	"fmt"
)

// The errors of this package say what is wrong in terms of Config; a
// command line maps them to its flags (cmd/codeplan does) and adds what to
// do. Each condition a caller may react to has a sentinel (errors.Is) or a
// type (errors.As).

// ConfigError is a Config setting that cannot be used: a value out of range
// (Want says what is accepted) or a file path that does not work (Err says
// why).
type ConfigError struct {
	Field string // the Config field, e.g. "Rank"
	Value any    // the value it holds
	Want  string // what a valid value is, e.g. "1..4096" (when Err is nil)
	Err   error  // why a path does not work (nil for a value out of range)
}

// Error names the field as Config spells it.
func (e *ConfigError) Error() string { return e.Message(e.Field) }

// Message is the error with name in place of the field, so that a caller
// can name the setting the way its users know it (a flag, a JSON key).
func (e *ConfigError) Message(name string) string {
	switch {
	case e.Err != nil:
		return name + ": " + e.Err.Error()
	case e.Value == nil || fmt.Sprint(e.Value) == "":
		return fmt.Sprintf("%s is empty, want %s", name, e.Want)
	}
	return fmt.Sprintf("%s %v, want %s", name, e.Value, e.Want)
}

// Unwrap returns the cause of a path problem.
func (e *ConfigError) Unwrap() error { return e.Err }

// Conditions of the checkpoint next to Config.Out that decide whether a run
// may start. All of them are returned before the model is trained.
var (
	// ErrCheckpointExists: an earlier run left a checkpoint and
	// Config.Resume is not set; resume it or delete it.
	ErrCheckpointExists = errors.New("a checkpoint of an earlier run exists")
	// ErrNoCheckpoint: Config.Resume is set but there is no checkpoint and
	// no finished output either; start without Resume.
	ErrNoCheckpoint = errors.New("no checkpoint to resume")
	// ErrNothingToResume: Config.Resume is set, the output is written and
	// the checkpoint is gone, so the run has finished; delete the output to
	// train again, or write elsewhere.
	ErrNothingToResume = errors.New("the run has already finished, nothing to resume")
	// ErrCheckpoint: the checkpoint was made with another base model or
	// other settings (the message lists which); resume with the settings of
	// the run that wrote it, or delete it to start over.
	ErrCheckpoint = errors.New("checkpoint does not match")
)

// ErrInterrupted is returned (as an *InterruptedError) when the context was
// cancelled: the step in progress was finished and a checkpoint written,
// and Config.Resume continues from it.
var ErrInterrupted = errors.New("fine-tuning interrupted")

// InterruptedError says where an interrupted run stopped and where its
// checkpoint is. errors.Is(err, ErrInterrupted) holds for it.
type InterruptedError struct {
	Step, Steps int    // optimizer steps done, of all
	Checkpoint  string // the checkpoint that Config.Resume continues from
}

// Error says where the run stopped.
func (e *InterruptedError) Error() string {
	return fmt.Sprintf("%v after step %d of %d; checkpoint %s", ErrInterrupted, e.Step, e.Steps, e.Checkpoint)
}

// Unwrap makes errors.Is(err, ErrInterrupted) hold.
func (e *InterruptedError) Unwrap() error { return ErrInterrupted }

// ErrDiverged is returned (as a *DivergedError) when a gradient is not
// finite; a lower learning rate usually helps.
var ErrDiverged = errors.New("training diverged")

// DivergedError is the step whose gradient norm was NaN or infinite.
// errors.Is(err, ErrDiverged) holds for it.
type DivergedError struct {
	Step     int
	GradNorm float64
	Loss     float64 // the step's mean loss
}

// Error names the step and the values.
func (e *DivergedError) Error() string {
	return fmt.Sprintf("%v at step %d: gradient norm is %g (loss %g)", ErrDiverged, e.Step, e.GradNorm, e.Loss)
}

// Unwrap makes errors.Is(err, ErrDiverged) hold.
func (e *DivergedError) Unwrap() error { return ErrDiverged }
