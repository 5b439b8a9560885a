// Package layout holds no code: its test checks that the packages import
// each other only downwards, in the layers the README's Design section
// draws, and that llama imports nothing of ours outside llama/. A new
// package must be given a layer there, which keeps the drawing true.
package layout
