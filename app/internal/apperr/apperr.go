// Package apperr defines the error codes clients see, shared by the socket and HTTP APIs.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Stable error codes (docs/REFERENCE.md, Errors).
const (
	Unauthorized = "unauthorized"
	Forbidden    = "forbidden"
	NotFound     = "not_found"
	Invalid      = "invalid"
	TooLarge     = "too_large"
	RateLimited  = "rate_limited"
	Unavailable  = "unavailable"
	Conflict     = "conflict" // a name already taken (register, channel create)
)

// Error is a client-facing error. Its JSON form is the inner object of {error: {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an *Error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// From returns err as an *Error; anything else becomes "unavailable" without leaking
// internal detail to the client.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Unavailable, Message: "the service is temporarily unavailable, retry"}
}

// Body is the JSON envelope {error: {...}}.
type Body struct {
	Error *Error `json:"error"`
}

// HTTPStatus maps a code to its HTTP status.
func HTTPStatus(code string) int {
	switch code {
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Invalid:
		return http.StatusBadRequest
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimited:
		return http.StatusTooManyRequests
	case Conflict:
		return http.StatusConflict
	default:
		return http.StatusServiceUnavailable
	}
}
