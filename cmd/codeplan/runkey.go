package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/finetune"
	"github.com/codeplan-dev/codeplan/llama"
)

// modelKey names the model of a local run before it is loaded, for the
// settings that resumable outputs are keyed on: its file name (which tells
// quantizations apart) and the fingerprint that finetune records for
// adapters (which tells models apart whatever their file names). Reading
// the GGUF header also refuses a bad model file before anything else.
func modelKey(c *cli.Context) (dataset.Settings, string, error) {
	path, err := modelPath(c)
	if err != nil {
		return nil, "", err
	}
	base, err := finetune.InspectBase(path)
	if err != nil {
		return nil, "", usageError{err}
	}
	// The content fingerprint samples every tensor, and names its method,
	// so a file of rows keyed by an older fingerprint is never compared
	// with it as if the model had changed (see dataset.SettingsMismatchError).
	key := dataset.Settings{"model": base.FileName(), "model_fingerprint": base.ContentFingerprint}
	if hasFlag(c, "lora") {
		key["lora"], key["lora_scale"] = "", ""
		if p := c.String("lora"); p != "" {
			sum, err := fileHash(p)
			if err != nil {
				return nil, "", usagef("--lora: %v", err)
			}
			key["lora"] = filepath.Base(p) + "@" + sum
			key["lora_scale"] = formatFloat(c.Float64("lora-scale"))
		}
	}
	return key, path, nil
}

// fileHash is a short content hash, so that an adapter retrained under the
// same name counts as another adapter.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// addSampling adds the sampling settings to a key.
func addSampling(key dataset.Settings, s llama.SamplerOptions) {
	key["temperature"] = formatFloat(float64(s.Temperature))
	key["top_p"] = formatFloat(float64(s.TopP))
	key["top_k"] = strconv.Itoa(s.TopK)
	key["min_p"] = formatFloat(float64(s.MinP))
	key["repeat_penalty"] = formatFloat(float64(s.RepeatPenalty))
	key["seed"] = strconv.FormatUint(uint64(s.Seed), 10)
}

// textKey is a short hash of a text that may be long (a system message).
func textKey(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 32) }
