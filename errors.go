package lb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors. Match them with errors.Is: the errors lb returns wrap
// them with detail (which field, which address, which backends were tried).
var (
	// ErrNoEndpoints is returned by a pick when there is no backend to
	// choose from: the endpoint set is empty, or every candidate was excluded.
	ErrNoEndpoints = errors.New("lb: no endpoints")
	// ErrInvalidEndpoint is wrapped by the error for an endpoint that fails
	// validation: an empty or malformed address, a negative weight.
	ErrInvalidEndpoint = errors.New("lb: invalid endpoint")
	// ErrDuplicateEndpoint is wrapped by the error for an endpoint set that
	// names the same address twice.
	ErrDuplicateEndpoint = errors.New("lb: duplicate endpoint")
	// ErrInvalidConfig is wrapped by the error for an invalid strategy or
	// balancer setting (a nil Builder, a negative replica count, ...).
	ErrInvalidConfig = errors.New("lb: invalid configuration")
	// ErrClosed is returned by a Balancer that has been closed.
	ErrClosed = errors.New("lb: balancer closed")
)

// Whether a failed request may have run on a backend. Every error the
// Transport returns wraps exactly one of the two; match them with
// errors.Is.
var (
	// ErrNotSent means no backend received the request: it was refused
	// before a pick (ErrInvalidRequest, ErrUnknownHost), no backend was
	// available, or every attempt failed before the request was written
	// (the dial was refused, the name did not resolve, the TLS handshake
	// failed), as proven by where the error happened. Sending it again
	// cannot duplicate a side effect.
	ErrNotSent = errors.New("lb: request not sent")
	// ErrMaybeExecuted means at least one attempt may have reached a
	// backend: the connection broke after (or while) the request was
	// written, or the Transport cannot tell. The request may have taken
	// effect; send it again only if that is safe (an idempotent method, an
	// idempotency key the server honours).
	ErrMaybeExecuted = errors.New("lb: request may have executed")
)

// ErrPerTryTimeout is wrapped by the error of an attempt that had no
// response headers within the per-try timeout (WithPerTryTimeout): the
// backend's failure.
var ErrPerTryTimeout = errors.New("lb: per-try timeout")

// ErrBodyStalled is wrapped by the error a response body's Read returns
// when it waited longer than the body idle timeout (WithBodyIdleTimeout):
// the backend's failure.
var ErrBodyStalled = errors.New("lb: response body stalled")

// errPerTry is the cause an attempt's context is cancelled with when its
// per-try timeout fires.
var errPerTry = errors.New("per-try timeout")

// perTryError is an attempt's error after its per-try timeout.
type perTryError struct {
	after time.Duration
	err   error // what the base returned, if anything
}

func (e *perTryError) Error() string {
	return fmt.Sprintf("%v: no response headers after %v", ErrPerTryTimeout, e.after)
}

func (e *perTryError) Unwrap() error { return ErrPerTryTimeout }

// Timeout reports true: a per-try timeout is a timeout (net.Error style).
func (e *perTryError) Timeout() bool { return true }

// errFailureStatus is what Pick.Done receives for a response whose status
// the Transport was told to count as a failure (WithFailureStatus).
var errFailureStatus = errors.New("lb: failure status")

// Error is the error Transport.RoundTrip returns when it has no response:
// which backends were tried, why each failed, and why the Transport stopped.
// It wraps the last attempt's error (or the pick's error, such as
// ErrNoEndpoints, when no attempt was made), ErrNotSent or
// ErrMaybeExecuted, and the request context's error when the context ended.
type Error struct {
	// Attempts lists the backends tried, in order (empty when no backend
	// could be picked).
	Attempts []AttemptError
	// Err is the last attempt's error, or the pick's error.
	Err error
	// MaybeExecuted reports whether an attempt may have reached a backend
	// (see ErrMaybeExecuted).
	MaybeExecuted bool
	// Reason says why the Transport gave up: "no backend" (the first
	// pick failed), "max attempts", "not idempotent", "body not
	// replayable (no GetBody)", "retry budget exhausted", "no backend
	// left" (every backend was tried), "context done", or "GetBody
	// failed: ...".
	Reason string

	ctxErr error
}

// AttemptError is one failed attempt: the backend and what happened.
type AttemptError struct {
	Addr string
	// Err is the attempt's error; for a response counted as a failure
	// (WithFailureStatus) it says the status.
	Err error
	// MaybeExecuted reports whether the request may have reached the
	// backend.
	MaybeExecuted bool
}

// Error returns "lb: <class>: <reason>; tried <addr>: <err>, ...".
func (e *Error) Error() string {
	var sb strings.Builder
	if e.MaybeExecuted {
		sb.WriteString(ErrMaybeExecuted.Error())
	} else {
		sb.WriteString(ErrNotSent.Error())
	}
	if e.Reason != "" {
		sb.WriteString(" (")
		sb.WriteString(e.Reason)
		sb.WriteString(")")
	}
	if len(e.Attempts) == 0 {
		sb.WriteString(": ")
		sb.WriteString(fmt.Sprint(e.Err))
		return sb.String()
	}
	fmt.Fprintf(&sb, ": tried %d backend", len(e.Attempts))
	if len(e.Attempts) > 1 {
		sb.WriteString("s")
	}
	for i, a := range e.Attempts {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString(a.Addr)
		sb.WriteString(": ")
		sb.WriteString(fmt.Sprint(a.Err))
	}
	return sb.String()
}

// Timeout reports whether the request ended because time ran out: the
// caller's deadline (or http.Client.Timeout), or the last attempt's
// timeout (a per-try timeout, a dial timeout). url.Error's Timeout, and so
// http.Client's errors, report it.
func (e *Error) Timeout() bool {
	if errors.Is(e.ctxErr, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// Unwrap returns the last error, the class (ErrNotSent or
// ErrMaybeExecuted) and the context's error if it ended.
func (e *Error) Unwrap() []error {
	errs := []error{e.Err, ErrNotSent}
	if e.MaybeExecuted {
		errs[1] = ErrMaybeExecuted
	}
	if e.ctxErr != nil {
		errs = append(errs, e.ctxErr)
	}
	return errs
}

// statusError is an attempt's error for a response counted as a failure.
type statusError struct{ code int }

func (s statusError) Error() string {
	return fmt.Sprintf("status %d %s", s.code, http.StatusText(s.code))
}

// dialError is an error of the default base's dial or TLS handshake: the
// request was not written. It wraps the error, so that errors.Is and
// errors.As see what happened (a refused connection, a certificate).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }

func (e *dialError) Unwrap() error { return e.err }

// ErrInvalidRequest is wrapped by the error of a request the Transport
// refuses before it picks a backend, because net/http would refuse to send
// it (a header value with a newline, an invalid method, a scheme other than
// http and https, a ContentLength without a body), or would not send its
// Host as given (net/http blanks a Host with a space or a control
// character, and replaces bytes that are not UTF-8), or because its body
// failed on the caller's side (a read error, fewer or more bytes than
// ContentLength). Such a request is never retried and never counts as a
// backend's failure; the error also wraps ErrNotSent when no backend saw
// the request.
var ErrInvalidRequest = errors.New("lb: invalid request")

// ErrUnknownHost is wrapped by the error for a request whose URL names a
// host the Transport does not serve (see WithHosts), when it has no
// fallback RoundTripper. The request was not sent.
var ErrUnknownHost = errors.New("lb: host not served by this Transport")

// ErrHedgeLost is the error of an attempt of a hedged request
// (WithHedging) that another attempt beat: it was cancelled when the other
// answered first. The caller never sees it; an attempt observer
// (WithAttemptObserver) does, in AttemptInfo.Err, with Failure false.
var ErrHedgeLost = errors.New("lb: another attempt answered first")
