// Package finetune trains a LoRA adapter on CodePlan rows (prompt, plan,
// response), the fine-tuning step of the method: every row becomes one
// sequence in the trained format (planner.Prompter.TrainingExample) and the
// loss scores only the target, the plan and the response, never the prompt.
//
// Training runs through an lm.Trainer (llama.Trainer: llama.cpp's model and ggml's
// automatic differentiation; the base weights stay frozen). With
// Config.Full every weight of an F32 model is trained instead (for models
// from `codeplan model init`, trained from scratch) and the whole model is
// written. This package turns rows into token sequences (LoadExamples),
// packs them into batches in a seeded order per epoch, drives AdamW with a warm-up and a cosine, linear
// or constant decay, measures a held-out loss, and writes:
//
//   - the adapter (standard llama.cpp LoRA GGUF plus codeplan.* keys naming
//     the base model and its fingerprint, rank, targets and training stats);
//   - <adapter>.log.csv, one row per optimizer step, and <adapter>.loss.png;
//   - <adapter>.ckpt.gguf while a run is unfinished: adapter values, AdamW
//     moments and the step, so that Config.Resume continues bit for bit
//     like an uninterrupted run;
//   - optionally the base model with the adapter merged in (Merge);
//   - with Full, the trained model instead of the adapter (the base's
//     metadata and tensor order, every weight as trained, codeplan.train.*
//     keys), and a checkpoint with every weight and its moments.
//
// Errors speak in Config's terms, never in a command line's: a bad setting
// or path is a *ConfigError naming its field; the checkpoint conditions,
// a diverged run and an interruption have sentinels (ErrCheckpointExists,
// ErrNoCheckpoint, ErrNothingToResume, ErrCheckpoint, ErrDiverged,
// ErrInterrupted) so that a caller can say what to do in its own terms.
package finetune
