package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/codeplan-dev/codeplan/dataset"
)

// ModelKey names the model that produces a job's rows, as it appears in
// the job's settings key (Job.Settings): a rerun with another model or
// adapter is refused instead of mixing rows.
type ModelKey struct {
	// Name is a local model's file name (which tells quantizations apart)
	// or a served model's name ("model").
	Name string
	// Fingerprint identifies a local model whatever its file name
	// ("model_fingerprint"; empty for a served model, and then absent).
	Fingerprint string
	// AdapterKeyed puts "lora" and "lora_scale" in the key, empty when no
	// adapter is used: set for the commands that take --lora.
	AdapterKeyed bool
	// LoRA is the adapter's file name and content hash ("name@hash"), so
	// that an adapter retrained under the same name counts as another;
	// LoRAScale its scale.
	LoRA      string
	LoRAScale float64
}

// Settings returns the key's model part; a job adds its own settings.
func (k ModelKey) Settings() dataset.Settings {
	s := dataset.Settings{"model": k.Name}
	if k.Fingerprint != "" {
		s["model_fingerprint"] = k.Fingerprint
	}
	if k.AdapterKeyed {
		s["lora"], s["lora_scale"] = "", ""
		if k.LoRA != "" {
			s["lora"], s["lora_scale"] = k.LoRA, FormatFloat(k.LoRAScale)
		}
	}
	return s
}

// TextKey is a short hash of a text that may be long (a system message),
// "" for "".
func TextKey(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// FormatFloat writes a setting's number as every key does: the shortest
// form that reads back as the same float32.
func FormatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 32) }
