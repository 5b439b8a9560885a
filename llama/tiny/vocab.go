package tiny

// The vocabulary is GPT-2 style byte-level BPE without merges: one token per
// byte plus three ChatML control tokens. Because every byte has a token,
// llama.cpp can tokenize and detokenize any text exactly, which keeps test
// expectations simple.
const (
	// NumByteTokens is the number of byte tokens; token i stands for byte i.
	NumByteTokens = 256
	// TokenEndOfText is <|endoftext|>, used as BOS and padding.
	TokenEndOfText = 256
	// TokenIMStart is <|im_start|>, which opens a ChatML message.
	TokenIMStart = 257
	// TokenIMEnd is <|im_end|>, which closes a ChatML message; it is the EOS
	// token so that chat generation stops there.
	TokenIMEnd = 258
	// VocabSize is the total number of tokens.
	VocabSize = 259
)

// specialTokens are the texts of the control tokens in id order after the
// byte tokens.
var specialTokens = [...]string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// ChatTemplate is a ChatML Jinja template. llama.cpp recognises ChatML by the
// <|im_start|> marker, so it formats chats the same way with or without a
// Jinja engine.
const ChatTemplate = "{% for message in messages %}" +
	"{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
	"{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// Token types as llama.cpp's llama_token_type enumerates them.
const (
	tokenTypeNormal  = 1
	tokenTypeControl = 3
)

// byteRunes maps each byte to the printable rune GPT-2's bytes_to_unicode
// assigns it: bytes that are printable Latin-1 characters map to themselves,
// and the remaining 68 bytes map, in increasing order, to U+0100 onwards.
// llama.cpp applies the same table when it splits text into byte tokens.
var byteRunes = func() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := 0; b < 256; b++ {
		if printableLatin1(b) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
	}
	return m
}()

// printableLatin1 reports whether GPT-2 keeps byte b as its own character:
// '!'..'~', '¡'..'¬' and '®'..'ÿ'.
func printableLatin1(b int) bool {
	return ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
}

// ByteToRune returns the character that stands for byte b in the token list.
func ByteToRune(b byte) rune { return byteRunes[b] }

// RuneToByte inverts ByteToRune; ok is false for runes that stand for no byte.
func RuneToByte(r rune) (b byte, ok bool) {
	switch {
	case r >= 0 && r < 256 && printableLatin1(int(r)):
		return byte(r), true
	case r >= 256 && r < 256+68:
		for i, x := range byteRunes {
			if x == r {
				return byte(i), true
			}
		}
	}
	return 0, false
}

// Tokens returns the token texts in id order, as written to
// tokenizer.ggml.tokens.
func Tokens() []string {
	toks := make([]string, 0, VocabSize)
	for b := 0; b < NumByteTokens; b++ {
		toks = append(toks, string(byteRunes[b]))
	}
	return append(toks, specialTokens[:]...)
}

// TokenTypes returns the llama.cpp token types in id order: normal for bytes,
// control for the special tokens so they are only produced by special-token
// parsing and hidden when detokenizing.
func TokenTypes() []int32 {
	types := make([]int32, VocabSize)
	for i := range types {
		if i < NumByteTokens {
			types[i] = tokenTypeNormal
		} else {
			types[i] = tokenTypeControl
		}
	}
	return types
}
