package text

import (
	"fmt"
	"strings"
	"testing"
)

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

func TestEmoji(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"👍", true},
		{"👍🏽", true},               // with a skin tone
		{"❤️", true},               // with the emoji variation selector
		{"👩‍👩‍👧‍👦", true},          // a family: zero-width joiners, one grapheme
		{"🇫🇷", true},               // a flag: two regional indicators
		{"1️⃣", true},              // a keycap
		{"#⃣", true},               // a keycap without the selector
		{":shipit:", true},         // a short name
		{":party_parrot+1:", true}, // letters, digits, _ + -
		{"", false},                // nothing
		{"👍👍", false},              // two emoji
		{"a", false},               // a letter
		{"1", false},               // a digit alone
		{"👍a", false},              // an emoji and a letter
		{":Ship It:", false},       // a name with upper case and a space
		{":" + strings.Repeat("a", 33) + ":", false}, // too long a name
		{"\u200d", false}, // a joiner alone
		{"🇫", false},      // half a flag
		{"\xff", false},   // not UTF-8
	} {
		if got := Emoji(tc.in); got != tc.want {
			t.Errorf("Emoji(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"hello @bob", "[bob]"},
		{"@Alice and @bob, then @ALICE again", "[alice bob]"},
		{"thanks @bob.", "[bob]"},
		{"mail me at me@example.com", "[]"},
		{"@@bob", "[]"},
		{"(@carol)", "[carol]"},
		{"@al", "[]"}, // too short for a username
		{"@a.b-c_d", "[a.b-c_d]"},
		{"no mention", "[]"},
		{"@u01 @u02 @u03 @u04", "[u01 u02 u03]"}, // at most 3 here
	} {
		got := Mentions(tc.in, 3)
		if s := fmt.Sprint(got); s != tc.want && !(tc.want == "[]" && len(got) == 0) {
			t.Errorf("Mentions(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}
