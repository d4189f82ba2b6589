package lb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// checkRequest returns why net/http would refuse to send req, or "".
// schemes: whether to insist on http or https (the base is net/http's).
func checkRequest(req *http.Request, schemes bool) string {
	switch {
	case req.URL == nil:
		return "the request has no URL"
	case req.URL.Scheme == "":
		return "the request URL has no scheme"
	case schemes && req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return fmt.Sprintf("unsupported protocol scheme %q (http and https are)", req.URL.Scheme)
	case req.Header == nil:
		return "the request has a nil Header"
	case req.Method != "" && !isToken(req.Method):
		return fmt.Sprintf("invalid method %q", req.Method)
	case req.Body == nil && req.ContentLength > 0:
		return fmt.Sprintf("ContentLength is %d with a nil Body", req.ContentLength)
	case req.ContentLength < -1:
		return fmt.Sprintf("ContentLength is %d", req.ContentLength)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHostHeader(host) {
		return fmt.Sprintf("invalid Host %q", host)
	}
	if why := checkFields("header", req.Header); why != "" {
		return why
	}
	if len(req.Trailer) > 0 {
		return checkFields("trailer", req.Trailer)
	}
	return ""
}

// checkFields returns why net/http would refuse to send the header (or
// trailer) fields h, or "".
func checkFields(what string, h http.Header) string {
	for k, vs := range h {
		if !isToken(k) {
			return fmt.Sprintf("invalid %s field name %q", what, k)
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return fmt.Sprintf("invalid %s field value for %q (a control character)", what, k)
			}
		}
	}
	return ""
}

// Byte classes, one table lookup a byte on every request's checks.
const (
	classToken = 1 << iota // a token character (RFC 9110 tchar)
	classHost              // may appear in a Host header: URI host and port bytes, or non-ASCII
	classCtl               // a control character a field value may not hold (all but tab)
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if b > ' ' && b < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(b)) {
			t[c] |= classToken
		}
		if b >= 0x80 || isAlnum(b) || strings.IndexByte("!$%&'()*+,-.:;=[]_~", b) >= 0 {
			t[c] |= classHost
		}
		if b < ' ' && b != '\t' || b == 0x7f {
			t[c] |= classCtl
		}
	}
	return t
}()

// validFieldValue reports whether v may be sent as a header field value
// (RFC 9110: no control characters but horizontal tab), as net/http checks.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if byteClass[v[i]]&classCtl != 0 {
			return false
		}
	}
	return true
}

// validHostHeader reports whether h may be sent as a Host header as it
// is: the bytes of a URI host and port (RFC 3986 reg-name, IP literal), or
// a host in UTF-8 (which net/http converts to punycode; it refuses a Host
// that is not UTF-8, and blanks one whose port is not ASCII).
func validHostHeader(h string) bool {
	ascii := true
	for i := 0; i < len(h); i++ {
		if c := byteClass[h[i]]; c&classHost == 0 {
			return false
		}
		ascii = ascii && h[i] < utf8.RuneSelf
	}
	if ascii {
		return true
	}
	if !utf8.ValidString(h) {
		return false
	}
	if _, port, err := net.SplitHostPort(h); err == nil {
		for i := 0; i < len(port); i++ {
			if port[i] >= utf8.RuneSelf {
				return false
			}
		}
	}
	return true
}

// validRequestTarget reports whether p can be sent as a request's path
// and query: it parses as a URL's path and query, and holds no spaces,
// control characters or fragment.
func validRequestTarget(p string) bool {
	for i := 0; i < len(p); i++ {
		if b := p[i]; b <= ' ' || b == 0x7f || b == '#' {
			return false
		}
	}
	u, err := url.Parse("http://h" + p)
	return err == nil && u.Host == "h"
}

// callerDone reports whether the caller has given up on req: its context
// ended, its Cancel channel (set by http.Client.Timeout, which cancels a
// RoundTripper of its own kind through it, a moment before the context's
// deadline) closed, or its context's deadline passed. A failure then is
// the caller's doing, never the backend's, and is not retried.
func callerDone(req *http.Request) bool {
	return callerErr(req) != nil
}

// callerErr returns why the caller gave up on req (see callerDone), or
// nil: the context's error, context.DeadlineExceeded for a deadline that
// passed or a closed Cancel channel with a deadline set (http.Client's
// timeout), context.Canceled for a closed Cancel channel otherwise.
func callerErr(req *http.Request) error {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	if req.Cancel != nil {
		select {
		case <-req.Cancel:
			if hasDeadline {
				return context.DeadlineExceeded
			}
			return context.Canceled
		default:
		}
	}
	return nil
}
