package lb

import (
	"errors"
	"net"
	"net/http"
)

// notSent reports whether err proves that the request never reached the
// backend. The proof is where the error happened, never the error's type
// alone (a TLS record error, say, happens in a handshake and after a
// request was written alike): the default base marks the errors of its
// own dials and TLS handshakes (dialError); a base of your own proves it
// with an error that wraps ErrNotSent, or by a dial's *net.OpError (Op
// "dial" or "proxyconnect") or a name that did not resolve (*net.DNSError),
// which only dials produce. Anything else may have executed.
func notSent(err error) bool {
	if errors.Is(err, ErrNotSent) {
		return true
	}
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
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
