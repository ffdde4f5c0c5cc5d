package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"unicode/utf8"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/text"
)

// WriteJSON writes v as a JSON response with the given status. A value that cannot
// be encoded becomes a 503 "unavailable" error instead of a half-written body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e := apperr.From(err)
		status = apperr.HTTPStatus(e.Code)
		b, _ = json.Marshal(apperr.Body{Error: e}) // cannot fail: two strings
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client hung up; nothing more to do
}

// WriteError writes err as {"error":{"code","message"}} with the status its code maps
// to. An error that is not an *apperr.Error is reported as "unavailable" without
// detail; callers log it first.
func WriteError(w http.ResponseWriter, err error) {
	e := apperr.From(err)
	WriteJSON(w, apperr.HTTPStatus(e.Code), apperr.Body{Error: e})
}

// decodeJSON reads one JSON value of at most limit bytes from r into dst and turns
// every failure into a client error that says what to fix.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeError(err, limit)
	}
	// encoding/json would replace invalid bytes with U+FFFD, so two different byte
	// strings would log in as one password.
	if !utf8.Valid(raw) {
		return apperr.New(apperr.Invalid, "request body is not valid UTF-8")
	}
	// Nor may a lone surrogate escape ("\ud800") become U+FFFD: "pass\ud800word1"
	// would log in as "pass\udc00word1".
	if text.LoneSurrogate(raw) {
		return apperr.New(apperr.Invalid, "request body has a lone UTF-16 surrogate escape (\\ud800 and the like)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, limit)
	}
	// One object per request: trailing data usually means a client bug.
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := decodeError(err, limit); e.Code == apperr.TooLarge {
				return e
			}
		}
		return apperr.New(apperr.Invalid, "request body must contain a single JSON object")
	}
	return nil
}

func tooLarge(limit int64) *apperr.Error {
	return apperr.New(apperr.TooLarge, "request body exceeds %d bytes", limit)
}

func decodeError(err error, limit int64) *apperr.Error {
	var (
		maxErr  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return tooLarge(limit)
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "malformed JSON: body ends early")
	case errors.As(err, &syntax):
		return apperr.New(apperr.Invalid, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return apperr.New(apperr.Invalid, "field %q must be a %s", typeErr.Field, jsonKind(typeErr.Type))
	case errors.As(err, &typeErr):
		return apperr.New(apperr.Invalid, "request body must be a JSON object")
	default:
		return apperr.New(apperr.Invalid, "malformed JSON request body")
	}
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "number"
	}
}
