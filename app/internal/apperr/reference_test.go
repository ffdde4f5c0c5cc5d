package apperr

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The reference's error table lists every code with the HTTP status it maps to.
func TestReferenceListsEveryCode(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{Unauthorized, Forbidden, NotFound, Invalid, TooLarge, RateLimited, Conflict, Unavailable} {
		row := fmt.Sprintf("| `%s` | %d |", code, HTTPStatus(code))
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/REFERENCE.md, Errors, lacks the row %q", row)
		}
	}
}
