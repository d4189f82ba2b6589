package lb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Whether a failed request may have run on a backend. Every error the
// Transport returns wraps exactly one of the two; match them with
// errors.Is.
var (
	// ErrNotSent means no backend received the request: no backend was
	// available, or every attempt failed before the request was written
	// (the dial was refused, the name did not resolve, the TLS handshake
	// failed). Sending it again cannot duplicate a side effect.
	ErrNotSent = errors.New("lb: request not sent")
	// ErrMaybeExecuted means at least one attempt may have reached a
	// backend: the connection broke after (or while) the request was
	// written, or the Transport cannot tell. The request may have taken
	// effect; send it again only if that is safe (an idempotent method, an
	// idempotency key the server honours).
	ErrMaybeExecuted = errors.New("lb: request may have executed")
)

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

// notSent reports whether err proves that the request never reached the
// backend: the connection was never made. Errors that wrap ErrNotSent count
// too, so a custom base RoundTripper can say so itself. Anything else may
// have executed.
func notSent(err error) bool {
	if errors.Is(err, ErrNotSent) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var (
		dnsErr   *net.DNSError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &dnsErr) || errors.As(err, &verify) || errors.As(err, &record) ||
		errors.As(err, &hostname) || errors.As(err, &unknown) || errors.As(err, &invalid)
}

// idempotent reports whether a request may be sent twice without harm: its
// method is idempotent (RFC 9110) or it carries an idempotency key, as
// net/http decides for its own retries.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := r.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := r.Header["X-Idempotency-Key"]
	return ok
}

// replayable reports whether the request's body can be sent again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}
