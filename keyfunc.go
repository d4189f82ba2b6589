package lb

import (
	"net/http"
	"net/url"
	"strings"
)

// KeyFunc extracts a request's hash key: the string hash strategies (Ring,
// Maglev) place, so that requests with the same key go to the same backend.
// It returns "" when the request has no key; hash strategies then pick at
// random, and the other strategies ignore keys altogether. A KeyFunc must
// not modify the request. Pass one to NewTransport with WithKey; any
// func(*http.Request) string will do.
type KeyFunc func(*http.Request) string

// HeaderKey returns a KeyFunc that uses the first value of the header name
// (for example "X-User-Id").
func HeaderKey(name string) KeyFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		if v := r.Header[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// CookieKey returns a KeyFunc that uses the value of the cookie name (the
// first valid one, as http.Request.Cookie finds it, without its quotes).
// Unlike Request.Cookie it allocates nothing.
func CookieKey(name string) KeyFunc {
	return func(r *http.Request) string {
		v, _ := cookieValue(r.Header["Cookie"], name)
		return v
	}
}

// QueryKey returns a KeyFunc that uses the first value of the query
// parameter name, decoded as url.ParseQuery does (pairs that do not decode,
// or that contain a semicolon, are skipped). It allocates only when the
// value or a name before it is escaped.
func QueryKey(name string) KeyFunc {
	return func(r *http.Request) string {
		if r.URL == nil {
			return ""
		}
		v, _ := queryValue(r.URL.RawQuery, name)
		return v
	}
}

// PathKey returns a KeyFunc that uses the request's URL path, so that each
// resource (a cache key, an object) has its own backend.
func PathKey() KeyFunc {
	return func(r *http.Request) string {
		if r.URL == nil {
			return ""
		}
		return r.URL.Path
	}
}

// cookieValue finds the cookie name in Cookie header lines, by the rules of
// net/http's cookie parser: pairs are separated by ';', names and values are
// trimmed of spaces, names must be tokens, values may be quoted and must
// hold only valid cookie octets; the first valid pair named name wins.
func cookieValue(lines []string, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = trimSpace(part)
			if part == "" {
				continue
			}
			n, v, _ := strings.Cut(part, "=")
			if trimSpace(n) != name || !isToken(name) {
				continue
			}
			if v, ok := cookieText(v); ok {
				return v, true
			}
		}
	}
	return "", false
}

// trimSpace trims ASCII spaces and tabs, as net/textproto.TrimString does
// (it trims all ASCII whitespace).
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// cookieText strips the quotes of a cookie value and checks its bytes.
func cookieText(v string) (string, bool) {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return v, true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if byteClass[s[i]]&classToken == 0 {
			return false
		}
	}
	return true
}

// queryValue returns the first value of name in a raw query, decoded, by
// the rules of url.ParseQuery.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := unescapeQuery(k)
		if !ok || k != name {
			continue
		}
		if v, ok := unescapeQuery(v); ok {
			return v, true
		}
	}
	return "", false
}

// unescapeQuery decodes s as url.QueryUnescape does, allocating only when s
// holds an escape.
func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
