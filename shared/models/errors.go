package models

import (
	"errors"
	"fmt"
)

// Kind is what went wrong, in terms every transport can map: the HTTP
// handlers turn each kind into one status code, in one place.
type Kind string

const (
	// KindInvalid: the request breaks a rule; the message says which.
	KindInvalid Kind = "invalid"
	// KindNotFound: no such item (or resource).
	KindNotFound Kind = "not_found"
	// KindConflict: the request is valid but the state forbids it, such as
	// an id that is taken.
	KindConflict Kind = "conflict"
	// KindForbidden: the caller is known but may not do this.
	KindForbidden Kind = "forbidden"
	// KindMismatch: an idempotency key was reused for a different request.
	KindMismatch Kind = "mismatch"
	// KindUnavailable: a dependency did not answer in time; retrying later
	// may succeed.
	KindUnavailable Kind = "unavailable"
	// KindInternal: a bug or an answer we cannot understand. Its details are
	// logged, never shown to clients.
	KindInternal Kind = "internal"
)

// Error is the domain error: a kind and a message written for clients.
// Err, when set, is the cause, for logs.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

// Errorf builds an Error with a formatted message; a %w in it becomes the
// cause.
func Errorf(kind Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Wrap gives cause a kind and a client-facing message.
func Wrap(kind Kind, message string, cause error) *Error {
	return &Error{Kind: kind, Message: message, Err: cause}
}

func (e *Error) Error() string {
	if e.Err != nil && e.Err.Error() != e.Message {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorKind is err's kind: that of the outermost *Error in its chain, and
// KindInternal for an error that is not a domain error (nil: "").
func ErrorKind(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrorMessage is what a client may read about err: the domain message, or
// a fixed text for internal errors, whose details stay in the logs.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Message
	}
	return "internal error"
}
