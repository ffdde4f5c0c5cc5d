// Package text checks what clients write: JSON strings that would decode into other
// text than was sent, and texts that show nothing.
package text

import (
	"unicode"
	"unicode/utf8"
)

// LoneSurrogate reports whether the JSON document raw escapes a UTF-16 surrogate
// that is not half of a pair ("\ud800" alone). encoding/json decodes one as U+FFFD,
// so two different inputs (a password, a message) would become the same text: they
// are refused instead. Outside strings a backslash is a JSON syntax error anyway, so
// the scan need not know where strings are.
func LoneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 >= len(raw) || raw[i+1] != 'u' {
			i++ // a two-character escape, such as \\ or \"
			continue
		}
		r, ok := hex4(raw, i+2)
		if !ok {
			return false // malformed: the JSON decoder says so
		}
		i += 5
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low half with no high half before it
		case r >= 0xD800 && r <= 0xDBFF:
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return true
			}
			low, ok := hex4(raw, i+3)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// brailleBlank shows nothing in most fonts and is a favourite of empty-looking names.
const brailleBlank = '\u2800'

// Invisible reports whether r shows nothing: white space, a format character (zero
// width space and joiners, the byte order mark), a default-ignorable code point (the
// Hangul fillers) or a variation selector.
func Invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) || r == brailleBlank
}

// Blank reports whether s has no visible character (an empty s is blank).
func Blank(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !Invisible(r) {
			return false
		}
	}
	return true
}
