package text

import (
	"regexp"
	"strings"
)

// mentionRE finds "@name" not preceded by a name character or "@" (so no e-mail
// address counts); a name is what a username may be (3–32 of A–Z a–z 0–9 _ . -).
var mentionRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{3,32})`)

// Mentions returns the distinct names a text mentions with @name, lower-cased, in the
// order they first appear, at most max. A name's trailing dots and dashes are the
// sentence's, not the name's ("thanks @bob." names bob).
func Mentions(s string, max int) []string {
	if !strings.Contains(s, "@") {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range mentionRE.FindAllStringSubmatch(s, -1) {
		name := strings.ToLower(strings.TrimRight(m[1], ".-"))
		if len(name) < 3 || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
		if len(out) == max {
			break
		}
	}
	return out
}
