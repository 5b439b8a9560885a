// Prints the token ids of stdin's text as JSON, from a tokenizer.json and
// tokenizer_config.json in the folder argv[2], loaded by @lenml/tokenizers
// (a JavaScript port of transformers' tokenizers); argv[3] = "special"
// adds the special tokens (BOS) as transformers does by default.
const fs = require("fs");
const path = require("path");
const { TokenizerLoader } = require("@lenml/tokenizers");
const dir = process.argv[2];
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
});
const text = fs.readFileSync(0, "utf8");
process.stdout.write(JSON.stringify(tok.encode(text, { add_special_tokens: process.argv[3] === "special" })));
