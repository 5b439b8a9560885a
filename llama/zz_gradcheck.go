package llama

/*
void cp_debug_gradcheck(void);
*/
import "C"

func debugGradcheck() { C.cp_debug_gradcheck() }
