package redis

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLayout(t *testing.T) {
	t.Parallel()
	l := newLayout("", "api")
	assert.Equal(t, "lb:{api}:ep:10.0.0.1:80", l.instanceKey("10.0.0.1:80"))
	assert.Equal(t, "lb:{api}:index", l.index())
	assert.Equal(t, "lb:{api}:changes", l.channel())
	assert.Equal(t, "__keyspace@3__:lb:{api}:ep:", l.keyspacePrefix(3))
	assert.Equal(t, "__keyspace@0__:lb:{api}:ep:*", l.keyspacePattern(0))
	assert.Equal(t, `__keyspace@0__:my:{a\*b\?\[c\]\\}:ep:*`, newLayout("my:", `a*b?[c]\`).keyspacePattern(0))
}

func TestParseKeyspace(t *testing.T) {
	t.Parallel()
	const prefix = "__keyspace@0__:lb:{api}:ep:"
	tests := []struct {
		channel, payload string
		wantID           string
		wantKind         eventKind
	}{
		{prefix + "10.0.0.1:80", "set", "10.0.0.1:80", eventFetch},
		{prefix + "a", "del", "a", eventFetch},
		{prefix + "a", "expired", "a", eventFetch},
		{prefix + "a", "evicted", "a", eventFetch},
		{prefix + "a", "rename_to", "a", eventFetch},
		{prefix + "a", "some_future_event", "a", eventFetch},
		{prefix + "a", "expire", "", eventIgnore}, // a TTL refresh
		{prefix + "a", "persist", "", eventIgnore},
		{prefix, "set", "", eventIgnore},                           // no ID
		{prefix + "a b", "set", "", eventIgnore},                   // not an ID
		{"__keyspace@1__:lb:{api}:ep:a", "set", "", eventIgnore},   // another database
		{"__keyspace@0__:lb:{api2}:ep:a", "set", "", eventIgnore},  // another service
		{"__keyspace@0__:lb:{api}:index", "zadd", "", eventIgnore}, // not an instance
		{prefix + strings.Repeat("x", MaxNameLen+1), "set", "", eventIgnore},
	}
	for _, tt := range tests {
		id, kind := parseKeyspace(prefix, tt.channel, tt.payload)
		assert.Equal(t, tt.wantID, id, "%s %s", tt.channel, tt.payload)
		assert.Equal(t, tt.wantKind, kind, "%s %s", tt.channel, tt.payload)
	}
}

func TestParseAnnouncement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give     string
		wantID   string
		wantKind eventKind
	}{
		{"10.0.0.1:80", "10.0.0.1:80", eventFetch},
		{"", "", eventReadAll},
		{"two words", "", eventReadAll},
		{"\xff", "", eventReadAll},
	}
	for _, tt := range tests {
		id, kind := parseAnnouncement(tt.give)
		assert.Equal(t, tt.wantID, id, tt.give)
		assert.Equal(t, tt.wantKind, kind, tt.give)
	}
}

func TestMissingEventClasses(t *testing.T) {
	t.Parallel()
	tests := []struct{ give, want string }{
		{"", "Kg$xe"},
		{"KA", ""},
		{"AKE", ""},
		{"KEA", ""},
		{"Ex", "Kg$e"},
		{"Kg$xe", ""},
		{"A", "K"},
		{"Kgx", "$e"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, missingEventClasses(tt.give), tt.give)
	}
}

// unescapeGlob undoes globEscape, and reports whether every character
// special to Redis's patterns was escaped.
func unescapeGlob(p string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				return "", false
			}
			i++
		case '*', '?', '[', ']':
			return "", false
		}
		b.WriteByte(p[i])
	}
	return b.String(), true
}

// FuzzNotification: whatever a channel name or payload holds, parsing
// never panics, an ID it returns is valid and is exactly what follows the
// prefix, every valid ID round-trips, and an escaped pattern matches only
// itself.
func FuzzNotification(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "", "a b", "x*y", `\`, "[::1]:80", "\xff", strings.Repeat("z", MaxNameLen)} {
		f.Add("api", s, "set")
	}
	f.Add("a*b?[c]", "id", "expired")
	f.Fuzz(func(t *testing.T, service, id, payload string) {
		l := newLayout("", service)
		prefix := l.keyspacePrefix(0)
		got, kind := parseKeyspace(prefix, prefix+id, payload)
		valid := validName(id) == nil
		switch {
		case !valid:
			require.Equal(t, eventIgnore, kind)
		case payload == "expire" || payload == "persist":
			require.Equal(t, eventIgnore, kind)
		default:
			require.Equal(t, eventFetch, kind)
			require.Equal(t, id, got)
		}
		if kind == eventFetch {
			require.NoError(t, validName(got))
			require.Equal(t, l.instanceKey(got), strings.TrimPrefix(prefix+id, "__keyspace@0__:"))
		}
		got, kind = parseAnnouncement(id)
		if valid {
			require.Equal(t, eventFetch, kind)
			require.Equal(t, id, got)
		} else {
			require.Equal(t, eventReadAll, kind)
		}
		pattern := l.keyspacePattern(0)
		lit, ok := unescapeGlob(strings.TrimSuffix(pattern, "*"))
		require.True(t, ok, "pattern %q has an unescaped special character", pattern)
		require.Equal(t, prefix, lit)
	})
}
