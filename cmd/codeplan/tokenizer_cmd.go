package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/dataset"
	"github.com/codeplan-dev/codeplan/synth"
	"github.com/codeplan-dev/codeplan/tokenizer"
)

func tokenizerCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenizer",
		Usage: "train a small byte-level BPE tokenizer on rows (for 'model init --tokenizer')",
		Subcommands: []*cli.Command{{
			Name:  "train",
			Usage: "learn a byte-level BPE vocabulary from the text fields of JSONL rows",
			Description: `Learns BPE merges from the text fields of the rows (Llama-3's pre-tokenizer
split, GPT-2's byte alphabet) until the vocabulary has --vocab tokens (or every
word of the rows is one token, which a small corpus reaches first): the 256
bytes, the chat markers <|endoftext|>, <|im_start|> and <|im_end|> as special
tokens, and the merges. Writes tokenizer.json and tokenizer_config.json (ChatML
template) to --output, a folder that 'codeplan model init --tokenizer DIR'
reads; llama.cpp loads it as a "llama-bpe" vocabulary. --synth-words keeps every
name, relation word, template word, plan keyword and number 0-99 of the synth
families one token. The same rows and flags always give the same files.

Example:
   codeplan synth --kinds hops,branch --steps 1-4 --n 2000 --out train.jsonl
   codeplan tokenizer train --vocab 1024 --input train.jsonl --synth-words --output tok
   codeplan model init --tokenizer tok --out init.gguf --layers 4 --embd 128 --heads 4 --ff 384`,
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "vocab", Value: 1024, Usage: "vocabulary size `N` (bytes, special tokens and merges)"},
				&cli.StringSliceFlag{Name: "input", Aliases: []string{"data", "i"}, Usage: "JSONL `FILE` of rows (repeatable)"},
				&cli.StringFlag{Name: "output", Aliases: []string{"out", "o"}, Usage: "tokenizer `DIR` to write"},
				&cli.StringFlag{Name: "fields", Value: "prompt,plan,nl_plan,control_plan,response", Usage: "comma-separated text fields of a row to learn from (absent ones are skipped)"},
				&cli.BoolFlag{Name: "synth-words", Usage: "make every word of the synth families (names, relations, template words, keywords, 0-99) one token"},
			},
			Action: runTokenizerTrain,
		}},
	}
}

// tokenizerLayout is text every trained model sees besides the rows: the
// chat roles and the plan layout of the trained format.
var tokenizerLayout = []string{"user\n", "assistant\n", "system\n", "Plan:\n```python\n", "\n```\nResponse:\n", "Plan:\n", "\nResponse:\n"}

func runTokenizerTrain(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("tokenizer train: unexpected argument %q (the rows are --input)", c.Args().First())
	}
	inputs := c.StringSlice("input")
	if len(inputs) == 0 {
		return usagef("tokenizer train: --input is required")
	}
	out := c.String("output")
	if out == "" {
		return usagef("tokenizer train: --output is required")
	}
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return usagef("tokenizer train: --output %s is a file, want a folder", out)
	}
	if n := c.Int("vocab"); n < tokenizer.MinVocab {
		return usagef("tokenizer train: --vocab %d is too small (at least %d: the 256 bytes and the special tokens)", n, tokenizer.MinVocab)
	}
	var fields []string
	for _, f := range strings.Split(c.String("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return usagef("tokenizer train: --fields names no field")
	}
	texts := append([]string{}, tokenizerLayout...)
	rows := 0
	for _, path := range inputs {
		got, n, err := readTexts(path, fields)
		if err != nil {
			return usageError{err}
		}
		texts = append(texts, got...)
		rows += n
	}
	if rows == 0 {
		return usagef("tokenizer train: --input has no rows")
	}
	var required []string
	if c.Bool("synth-words") {
		for _, w := range synth.Words() {
			required = append(required, w)
			if w[0] < '0' || w[0] > '9' {
				required = append(required, " "+w)
			}
		}
		required = append(required, "'s")
	}
	tk, err := tokenizer.Train(texts, tokenizer.Options{VocabSize: c.Int("vocab"), Required: required})
	if err != nil {
		return usageError{err}
	}
	if err := tk.WriteDir(out); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, out)
	log.Info().Str("output", out).Int("rows", rows).Int("tokens", tk.Len()).Int("merges", len(tk.Merges)).
		Int("required", len(required)).Msg("tokenizer trained")
	return nil
}

// readTexts returns the given string fields of every row of a JSONL file.
func readTexts(path string, fields []string) ([]string, int, error) {
	if err := dataset.CheckInputFile(path); err != nil {
		return nil, 0, fmt.Errorf("tokenizer train: --input: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("tokenizer train: --input: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var texts []string
	line, rows := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if !gjson.Valid(text) {
			return nil, 0, fmt.Errorf("tokenizer train: %s:%d: invalid JSON", path, line)
		}
		rows++
		for _, field := range fields {
			if v := gjson.Get(text, field); v.Type == gjson.String {
				texts = append(texts, v.Str)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("tokenizer train: %s: %w", path, err)
	}
	return texts, rows, nil
}
