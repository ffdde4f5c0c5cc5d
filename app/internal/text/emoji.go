package text

import (
	"regexp"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// MaxEmojiBytes bounds a reaction's emoji: the longest emoji sequences (a family of
// four with skin tones) are about 40 bytes.
const MaxEmojiBytes = 64

var emojiName = regexp.MustCompile(`^:[a-z0-9_+-]{1,32}:$`)

// Emoji reports whether s is one emoji as a reaction takes it: one user-perceived
// character (grapheme cluster) that is an emoji (a pictograph, possibly with skin
// tone, variation selector or zero-width joiners; a flag; a keycap), or a short
// name such as ":shipit:" (lower-case letters, digits, _ + -, up to 32).
func Emoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	if emojiName.MatchString(s) {
		return true
	}
	if uniseg.GraphemeClusterCount(s) != 1 {
		return false
	}
	first, size := utf8.DecodeRuneInString(s)
	switch {
	case pictograph(first):
		return true
	case regionalIndicator(first): // a flag is two of them
		second, _ := utf8.DecodeRuneInString(s[size:])
		return utf8.RuneCountInString(s) == 2 && regionalIndicator(second)
	case first == '#' || first == '*' || (first >= '0' && first <= '9'):
		// A keycap: the character, perhaps U+FE0F, then U+20E3.
		rest := s[size:]
		return rest == "\u20e3" || rest == "\ufe0f\u20e3"
	}
	return false
}

// pictograph reports whether r is in the blocks Unicode's emoji come from
// (Extended_Pictographic lies within them).
func pictograph(r rune) bool {
	switch {
	case r == 0x00A9, r == 0x00AE, r == 0x203C, r == 0x2049, r == 0x2122, r == 0x2139,
		r == 0x3030, r == 0x303D, r == 0x3297, r == 0x3299:
		return true
	case r >= 0x2194 && r <= 0x21AA, r >= 0x231A && r <= 0x23FF, r >= 0x24C2 && r <= 0x25FE,
		r >= 0x2600 && r <= 0x27BF, r >= 0x2934 && r <= 0x2935, r >= 0x2B05 && r <= 0x2B55:
		return true
	case r >= 0x1F000 && r <= 0x1FAFF:
		return !regionalIndicator(r)
	}
	return false
}

func regionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }
