package lb_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-lb/lb"
)

func TestTransportKeys(t *testing.T) {
	t.Parallel()
	_, eps := startTBackends(t, 5)
	mk := func(mut func(r *http.Request, user string)) func(user string) *http.Request {
		return func(user string) *http.Request {
			r, err := http.NewRequest(http.MethodGet, "http://svc/", nil)
			require.NoError(t, err)
			mut(r, user)
			return r
		}
	}
	tests := []struct {
		name string
		key  lb.KeyFunc
		req  func(user string) *http.Request
	}{
		{"header", lb.HeaderKey("x-user"), mk(func(r *http.Request, u string) { r.Header.Set("X-User", u) })},
		{"cookie", lb.CookieKey("session"), mk(func(r *http.Request, u string) { r.AddCookie(&http.Cookie{Name: "session", Value: u}) })},
		{"query", lb.QueryKey("user"), mk(func(r *http.Request, u string) { r.URL.RawQuery = url.Values{"user": {u}}.Encode() })},
		{"path", lb.PathKey(), mk(func(r *http.Request, u string) { r.URL.Path = "/users/" + u })},
		{"func", func(r *http.Request) string { return r.Header.Get("X-Tenant") }, mk(func(r *http.Request, u string) { r.Header.Set("X-Tenant", u) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, _ := newTestTransport(t, lb.Ring{}, eps, nil, lb.WithKey(tt.key))
			seen := map[string]bool{}
			for u := 0; u < 40; u++ {
				user := "user-" + strconv.Itoa(u)
				var first string
				for i := 0; i < 3; i++ {
					ctx, servedBy := lb.ServedBy(context.Background())
					resp, err := tr.RoundTrip(tt.req(user).WithContext(ctx))
					require.NoError(t, err)
					require.NoError(t, resp.Body.Close())
					if i == 0 {
						first = servedBy()
					}
					require.NotEmpty(t, first)
					require.Equal(t, first, servedBy(), "%s sticks to one backend", user)
				}
				seen[first] = true
			}
			assert.Greater(t, len(seen), 2, "keys spread over the backends")
		})
	}
}

func TestKeyFuncs(t *testing.T) {
	mk := func(raw string, h http.Header) *http.Request {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		if h == nil {
			h = http.Header{}
		}
		return &http.Request{URL: u, Header: h}
	}
	tests := []struct {
		name string
		key  lb.KeyFunc
		req  *http.Request
		want string
	}{
		{"header", lb.HeaderKey("x-user-id"), mk("/", http.Header{"X-User-Id": {"u1", "u2"}}), "u1"},
		{"header missing", lb.HeaderKey("X-User-Id"), mk("/", nil), ""},
		{"cookie", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"a=1; sid=abc; b=2"}}), "abc"},
		{"cookie quoted", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {`sid="abc"`}}), "abc"},
		{"cookie second line", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"a=1", " sid =x "}}), "x"},
		{"cookie invalid first", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {`sid=a\b; sid=ok`}}), "ok"},
		{"cookie prefix name", lb.CookieKey("sid"), mk("/", http.Header{"Cookie": {"xsid=1; sid2=2"}}), ""},
		{"cookie empty name", lb.CookieKey(""), mk("/", http.Header{"Cookie": {"=1"}}), ""},
		{"query", lb.QueryKey("u"), mk("/?a=1&u=bob&u=eve", nil), "bob"},
		{"query escaped", lb.QueryKey("u s"), mk("/?u+s=a%20b", nil), "a b"},
		{"query semicolon skipped", lb.QueryKey("u"), mk("/?u=1;x&u=2", nil), "2"},
		{"query bad escape skipped", lb.QueryKey("u"), mk("/?u=%zz&u=3", nil), "3"},
		{"query missing", lb.QueryKey("u"), mk("/?user=1", nil), ""},
		{"path", lb.PathKey(), mk("/a/b%20c", nil), "/a/b c"},
		{"query nil URL", lb.QueryKey("u"), &http.Request{Header: http.Header{}}, ""},
		{"path nil URL", lb.PathKey(), &http.Request{Header: http.Header{}}, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.key(tt.req), tt.name)
	}
	// The cookie and query keys agree with net/http where both apply, and
	// allocate nothing for plain values.
	r := mk("/?a=1&user=bob", http.Header{"Cookie": {"a=1; session=xyz"}})
	ck, qk := lb.CookieKey("session"), lb.QueryKey("user")
	c, err := r.Cookie("session")
	require.NoError(t, err)
	assert.Equal(t, c.Value, ck(r))
	assert.Equal(t, r.URL.Query().Get("user"), qk(r))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = ck(r); _ = qk(r) }))
}

// FuzzKeyFuncs checks that CookieKey and QueryKey agree with net/http on
// any input, and never panic.
func FuzzKeyFuncs(f *testing.F) {
	f.Add("a=1; sid=abc", "sid", "u=1&v=%20", "u")
	f.Add(`sid="q"; sid=2`, "sid", "u=1;2&u=3", "u")
	f.Add(" ;;= ; sid = x ", "sid", "%zz=1&u+v=2", "u v")
	f.Fuzz(func(t *testing.T, cookie, cname, query, qname string) {
		r := &http.Request{Header: http.Header{"Cookie": {cookie}}, URL: &url.URL{RawQuery: query}}
		want := ""
		if c, err := r.Cookie(cname); err == nil && cname != "" {
			want = c.Value
		}
		if strings.Count(cookie, ";") < 3000 { // net/http caps the cookie count
			assert.Equal(t, want, lb.CookieKey(cname)(r), "cookie %q in %q", cname, cookie)
		}
		q, _ := url.ParseQuery(query)
		assert.Equal(t, q.Get(qname), lb.QueryKey(qname)(r), "param %q in %q", qname, query)
	})
}
