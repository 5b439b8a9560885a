package llama

import "testing"

func TestZZGradcheck(t *testing.T) { debugGradcheck() }
