package llama

// LlamaCppCommit is the llama.cpp commit that this binding compiles: the one
// vendored by the pinned module github.com/ollama/ollama (see go.mod). The
// module records it in llama/build-info.cpp, which lives in a package we do
// not link, so it is repeated here; TestLlamaCppCommit keeps the two equal
// when the module is bumped.
const LlamaCppCommit = "ec98e2002"
