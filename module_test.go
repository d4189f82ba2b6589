package lb

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The root module's graph adds nothing to an importer's but xxhash and
// the test libraries (testify and goleak, with what testify itself needs):
// every heavier dependency lives in a nested module.
func TestRootModuleGraph(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	allowed := map[string]bool{
		"github.com/cespare/xxhash/v2": true, // the default hash
		"github.com/stretchr/testify":  true, // tests
		"go.uber.org/goleak":           true, // tests
		"go.yaml.in/yaml/v3":           true, // testify's own (indirect)
	}
	reqs := regexp.MustCompile(`(?m)^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/[^\s]+)\s+v[^\s]+`).FindAllStringSubmatch(string(mod), -1)
	require.NotEmpty(t, reqs)
	for _, m := range reqs {
		assert.True(t, allowed[m[1]], "the root module requires %s: move what needs it into a nested module", m[1])
	}
	assert.Regexp(t, `(?m)^go 1\.2[2-6]`, string(mod), "the oldest Go the module supports, no newer than the toolchain here")
}
