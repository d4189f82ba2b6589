package zookeeper

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckPath(t *testing.T) {
	t.Parallel()
	for _, give := range []string{"/a", "/services/api", "/a.b/..c/c..", "/zookeeper-not", "/a b", "/日本", "/a:1/[::1]:80"} {
		assert.NoError(t, checkPath(give), give)
	}
	tests := []struct{ give, want string }{
		{"", "is empty"},
		{"a", "not absolute"},
		{"/", "is the root"},
		{"/a/", `ends with "/"`},
		{"//a", "empty segment"},
		{"/a/./b", `"." segment`},
		{"/a/..", `".." segment`},
		{"/a\x00", "U+0000"},
		{"/a\u007f", "U+007F"},
		{"/a\u0085", "U+0085"},
		{"/a\uf000", "U+F000"},
		{"/a\ufff0", "U+FFF0"},
		{"/a\U0001F600", "U+1F600"},
		{"/a\xc0", "UTF-8"},
	}
	for _, tt := range tests {
		err := checkPath(tt.give)
		require.Error(t, err, "%q", tt.give)
		assert.Contains(t, err.Error(), tt.want)
	}
}

// FuzzCheckPath: checkPath never panics, and the paths it accepts are what
// ZooKeeper accepts: absolute, valid UTF-8, segments that are neither
// empty nor "." nor "..", and none of the characters ZooKeeper refuses.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/a", "/a/b", "/", "", "//", "/a/.", "/a\x00b", "/\uffff", "/..a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPath(p) != nil {
			return
		}
		require.True(t, strings.HasPrefix(p, "/"))
		require.True(t, utf8.ValidString(p))
		for _, seg := range strings.Split(p[1:], "/") {
			require.NotContains(t, []string{"", ".", ".."}, seg, "path %q", p)
			for _, r := range seg {
				require.False(t, r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0,
					"path %q has %U", p, r)
			}
		}
	})
}
