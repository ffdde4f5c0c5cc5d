package text

import "testing"

func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		lone bool
	}{
		{`{"p":"plain"}`, false},
		{`{"p":"pass\ud800word"}`, true},
		{`{"p":"pass\udc00word"}`, true},
		{`{"p":"\uD83D\uDE00"}`, false}, // a pair: an emoji
		{`{"p":"\ud83d\ude00\ud83d"}`, true},
		{`{"p":"\ud83d\u0041"}`, true}, // a high half followed by no low half
		{`{"p":"\\ud800"}`, false},     // an escaped backslash, then text
		{`{"p":"\\\ud800"}`, true},
		{`{"p":"\u00e9\n\t\""}`, false},
		{`{"p":"end\ud800"}`, true},
		{`{"p":"\u12"}`, false}, // malformed: left to the decoder
	} {
		if got := LoneSurrogate([]byte(tc.raw)); got != tc.lone {
			t.Errorf("LoneSurrogate(%s) = %v, want %v", tc.raw, got, tc.lone)
		}
	}
}

func TestBlank(t *testing.T) {
	for _, tc := range []struct {
		s     string
		blank bool
	}{
		{"", true},
		{"   \t\n", true},
		{"\u200b", true},                    // zero width space
		{"\u200d\u200b", true},              // zero width joiner
		{"\ufeff", true},                    // byte order mark
		{"\u3164", true},                    // Hangul filler
		{"\u2800 \u115f\u1160\uffa0", true}, // braille blank, more fillers
		{"\u00a0\u2003", true},              // no-break and em spaces
		{"\ufe0f", true},                    // a variation selector alone
		{"a", false},
		{"\u200bx\u200b", false},
		{"👍", false},
		{"\u2764\ufe0f", false}, // a heart with its emoji selector
		{"\xff", false},         // invalid UTF-8 is refused elsewhere, not as blank
	} {
		if got := Blank(tc.s); got != tc.blank {
			t.Errorf("Blank(%q) = %v, want %v", tc.s, got, tc.blank)
		}
	}
}
