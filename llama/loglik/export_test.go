package loglik

// ForceParallel makes every vocabulary take the parallel log-softmax path
// until the returned function restores the threshold.
func ForceParallel() (restore func()) {
	old := parallelVocab
	parallelVocab = 1
	return func() { parallelVocab = old }
}
