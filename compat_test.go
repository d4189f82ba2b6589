package lb

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/go-lb/lb/internal/crcforce"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNginxGolden checks CompatNginx against placements a real nginx made
// (testdata/nginx, written by compat/nginx/gen-golden.sh): every key must
// land on the server nginx sent it to.
func TestNginxGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "nginx", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		eps, keys, want := readNginxGolden(t, file)
		p, err := Ring{Compat: CompatNginx}.New(eps)
		require.NoError(t, err, file)
		agree := 0
		for i, k := range keys {
			b, err := p.Pick(k)
			require.NoError(t, err)
			if b.HashName() == want[i] {
				agree++
			}
		}
		t.Logf("nginx %s: %d servers, %d keys, %.2f%% agree", filepath.Base(file), len(eps), len(keys), 100*float64(agree)/float64(len(keys)))
		assert.Equal(t, len(keys), agree, "%s: keys placed as nginx placed them", file)
	}
}

func readNginxGolden(t *testing.T, file string) (eps []Endpoint, keys, want []string) {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 0 || fields[0] == "#":
		case fields[0] == "server" && len(fields) == 3:
			w, err := strconv.Atoi(fields[2])
			require.NoError(t, err)
			// nginx names a server by its text: the hash name.
			eps = append(eps, Endpoint{Addr: fmt.Sprintf("backend%d:80", len(eps)), HashKey: fields[1], Weight: w})
		case fields[0] == "key" && len(fields) == 3:
			keys, want = append(keys, fields[1]), append(want, fields[2])
		default:
			t.Fatalf("%s: bad line %q", file, sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	return eps, keys, want
}

func TestNginxServerText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give, host, port string
	}{
		{"10.0.0.1:8080", "10.0.0.1", "8080"},
		{"cache.example", "cache.example", ""},
		{"unix:/run/app.sock", "/run/app.sock", ""},
		{"UNIX:/x", "/x", ""},
		{"[::1]:80", "[::1]", "80"},
		{"host:", "host", ""},
		{"host:8a", "host:8a", ""},
		{"a:b:12", "a:b", "12"},
	}
	for _, tt := range tests {
		host, port := nginxServer(tt.give)
		assert.Equal(t, tt.host, host, tt.give)
		assert.Equal(t, tt.port, port, tt.give)
	}
}

// refPoint is one point of a reference ring built the slow, obvious way.
type refPoint struct {
	h    uint64
	name string
}

// refLookup is the first point at or after h (strict: after), wrapping.
func refLookup(pts []refPoint, h uint64, strict bool) string {
	i := sort.Search(len(pts), func(i int) bool {
		if strict {
			return pts[i].h > h
		}
		return pts[i].h >= h
	})
	if i == len(pts) {
		i = 0
	}
	return pts[i].name
}

// The compatibility rings, against references written from the rules as
// plainly as possible (string concatenation, sort.Slice): every key, and
// keys forced onto points exactly (CRC-32 can be steered with 4 bytes).
func TestCompatRingsMatchReference(t *testing.T) {
	t.Parallel()
	eps := make([]Endpoint, 40)
	for i := range eps {
		eps[i] = Endpoint{Addr: fmt.Sprintf("10.1.0.%d:80", i), HashKey: fmt.Sprintf("http://peer-%d:8080", i)}
	}
	for _, tt := range []struct {
		ring   Ring
		points func(name string, w int) []uint64
		strict bool
	}{
		{ring: Ring{Compat: CompatGroupcache}, points: func(name string, w int) []uint64 {
			var out []uint64
			for i := 0; i < 50*w; i++ {
				out = append(out, uint64(crc32.ChecksumIEEE([]byte(strconv.Itoa(i)+name))))
			}
			return out
		}},
		{ring: Ring{Compat: CompatStathat, Replicas: 7}, strict: true, points: func(name string, w int) []uint64 {
			var out []uint64
			for i := 0; i < 7*w; i++ {
				out = append(out, uint64(crc32.ChecksumIEEE([]byte(strconv.Itoa(i)+name))))
			}
			return out
		}},
		{ring: Ring{Compat: CompatNginx}, points: func(name string, w int) []uint64 {
			host, port := nginxServer(name)
			var out []uint64
			prev := uint32(0)
			for j := 0; j < 160*w; j++ {
				b := []byte(host + "\x00" + port)
				b = append(b, byte(prev), byte(prev>>8), byte(prev>>16), byte(prev>>24))
				prev = crc32.ChecksumIEEE(b)
				out = append(out, uint64(prev))
			}
			return out
		}},
	} {
		p, err := tt.ring.New(eps)
		require.NoError(t, err)
		var pts []refPoint
		for _, e := range eps {
			for _, h := range tt.points(e.HashKey, 1) {
				pts = append(pts, refPoint{h, e.HashKey})
			}
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].h < pts[j].h })
		keys := randomKeys(20000, 11)
		for _, pt := range pts[:200] {
			for _, d := range []uint32{0, 1, ^uint32(0)} { // on the point, just after, just before
				keys = append(keys, string(crcforce.Force([]byte("k"), uint32(pt.h)+d)))
			}
		}
		for _, k := range keys {
			b, _ := p.Pick(k)
			want := refLookup(pts, uint64(crc32.ChecksumIEEE([]byte(k))), tt.strict)
			require.Equal(t, want, b.HashName(), "%s key %q", tt.ring.Compat, k)
		}
	}
}

// gRPC's ring_hash: point counts follow the shares (the lightest node gets
// a whole number of points), and names are "name_i".
func TestCompatRingHashPoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    []Endpoint
		ring    Ring
		want    map[string]int // points per hash name
		wantAll int
	}{
		{
			name: "equal", give: Addrs("a:1", "b:1", "c:1", "d:1"), ring: Ring{Compat: CompatRingHash},
			want: map[string]int{"a:1": 256, "b:1": 256, "c:1": 256, "d:1": 256}, wantAll: 1024,
		},
		{
			// shares 0.3, 0.3, 0.4: scale = ceil(0.3*1024)/0.3 = 1026.67, 1027 points
			name: "weights 3 3 4", give: []Endpoint{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 3}, {Addr: "c:1", Weight: 4}},
			ring: Ring{Compat: CompatRingHash}, want: map[string]int{"a:1": 308, "b:1": 308, "c:1": 411}, wantAll: 1027,
		},
		{
			// the lightest share is 1/1001: ceil(1024/1001) = 2 points for it, 2002 in all
			name: "light", give: []Endpoint{{Addr: "a:1", Weight: 1000}, {Addr: "b:1", Weight: 1}},
			ring: Ring{Compat: CompatRingHash}, want: map[string]int{"a:1": 2000, "b:1": 2}, wantAll: 2002,
		},
		{
			// 1/5001: it would take 5001 points, capped at 4096; a's running
			// total takes them all and b gets none (so does gRPC's ring)
			name: "capped", give: []Endpoint{{Addr: "a:1", Weight: 5000}, {Addr: "b:1", Weight: 1}},
			ring: Ring{Compat: CompatRingHash}, want: map[string]int{"a:1": 4096}, wantAll: 4096,
		},
		{
			name: "min and max", give: Addrs("a:1", "b:1", "c:1"), ring: Ring{Compat: CompatRingHash, MinRingSize: 10, MaxRingSize: 20},
			want: map[string]int{"a:1": 4, "b:1": 4, "c:1": 4}, wantAll: 12,
		},
	}
	for _, tt := range tests {
		p, err := tt.ring.New(tt.give)
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.wantAll, p.Points(), tt.name)
		if tt.want != nil {
			got := map[string]int{}
			for _, o := range p.t.own {
				got[p.backends[o].HashName()]++
			}
			assert.Equal(t, tt.want, got, tt.name)
		}
	}
	// Points are XXH64("name_i"): the first point clockwise from 0 is the
	// smallest of them.
	p, err := Ring{Compat: CompatRingHash}.New([]Endpoint{{Addr: "10.0.0.1:80", HashKey: "node-a"}})
	require.NoError(t, err)
	smallest := ^uint64(0)
	for i := 0; i < 1024; i++ {
		smallest = min(smallest, XXHash(fmt.Sprintf("node-a_%d", i)))
	}
	assert.Equal(t, smallest, p.t.pos[0]>>p.t.up)
}

func TestCompatBadConfig(t *testing.T) {
	t.Parallel()
	eps := Addrs("a:1", "b:1")
	tests := []struct {
		give Ring
		want string
	}{
		{Ring{Compat: 99}, "Ring.Compat is 99"},
		{Ring{Compat: CompatGroupcache, Hash: CRC32}, "Ring.Hash must be nil"},
		{Ring{Compat: CompatNginx, Replicas: 100}, "Ring.Replicas is 100"},
		{Ring{Compat: CompatRingHash, Replicas: 1}, "Ring.Replicas is 1"},
		{Ring{MinRingSize: 5}, "must be 0 unless Ring.Compat is CompatRingHash"},
		{Ring{Compat: CompatRingHash, MinRingSize: 100, MaxRingSize: 10}, "Ring.MinRingSize 100 is greater than Ring.MaxRingSize 10"},
		{Ring{Compat: CompatRingHash, MaxRingSize: MaxRingHashSize + 1}, "Ring.MaxRingSize is"},
		{Ring{Compat: CompatRingHash, MinRingSize: -1}, "Ring.MinRingSize is -1"},
		{Ring{Compat: CompatGroupcache, Replicas: MaxRingPoints}, "lower Replicas or the weights"},
	}
	for _, tt := range tests {
		_, err := tt.give.New(eps)
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", tt.give)
		assert.Contains(t, err.Error(), tt.want)
	}
	// ring_hash sums weights in 32 bits.
	many := make([]Endpoint, 5000)
	for i := range many {
		many[i] = Endpoint{Addr: fmt.Sprintf("h%d:1", i), Weight: MaxWeight}
	}
	_, err := Ring{Compat: CompatRingHash}.New(many)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "sums weights in 32 bits")
}

// Names that collide are refused by every hash strategy, also when the
// backends come from separate NewBackends calls.
func TestHashNamesCollide(t *testing.T) {
	t.Parallel()
	a, err := NewBackends([]Endpoint{{Addr: "a:1", HashKey: "x"}})
	require.NoError(t, err)
	b, err := NewBackends([]Endpoint{{Addr: "b:1", HashKey: "x"}})
	require.NoError(t, err)
	c, err := NewBackends([]Endpoint{{Addr: "c:1", HashKey: "d:1"}})
	require.NoError(t, err)
	d, err := NewBackends(Addrs("d:1"))
	require.NoError(t, err)
	for _, builder := range hashBuilders() {
		for _, set := range [][]*Backend{{a[0], b[0]}, {d[0], c[0]}} {
			_, err := builder.Build(set)
			require.ErrorIs(t, err, ErrDuplicateEndpoint, "%T", builder)
			assert.Contains(t, err.Error(), "hash name")
		}
	}
	_, err = NewBackends([]Endpoint{{Addr: "a:1", HashKey: "x"}, {Addr: "b:1", HashKey: "x"}})
	require.ErrorIs(t, err, ErrDuplicateEndpoint)
}

// hashBuilders are a Builder of every hash strategy and scheme.
func hashBuilders() []Builder {
	return []Builder{
		Ring{}, Ring{Hash: CRC32}, Ring{Compat: CompatGroupcache}, Ring{Compat: CompatStathat},
		Ring{Compat: CompatNginx}, Ring{Compat: CompatRingHash}, Maglev{}, &Anchor{},
	}
}

// The hash name, not the address, places a backend: re-addressing an
// endpoint that keeps its HashKey moves no key.
func TestHashNamePlacesBackends(t *testing.T) {
	t.Parallel()
	before := []Endpoint{{Addr: "10.0.0.1:80", HashKey: "cache-a"}, {Addr: "10.0.0.2:80", HashKey: "cache-b"}, {Addr: "10.0.0.3:80", HashKey: "cache-c"}}
	after := []Endpoint{{Addr: "10.9.9.9:80", HashKey: "cache-a"}, {Addr: "10.0.0.2:80", HashKey: "cache-b"}, {Addr: "10.0.0.3:80", HashKey: "cache-c"}}
	keys := randomKeys(5000, 12)
	for _, builder := range hashBuilders() {
		bs1, err := NewBackends(before)
		require.NoError(t, err)
		bs2, err := NewBackends(after)
		require.NoError(t, err)
		p1, err := builder.Build(bs1)
		require.NoError(t, err)
		p2, err := builder.Build(bs2)
		require.NoError(t, err)
		for _, k := range keys {
			b1, _ := p1.Pick(k)
			b2, _ := p2.Pick(k)
			require.Equal(t, b1.HashName(), b2.HashName(), "%T %+v: key %q", builder, builder, k)
		}
	}
	// Without HashKeys, the address is the name: the default ring's points
	// are "addr#r", as before hash names.
	p, err := Ring{Replicas: 2, Hash: tableHash(map[string]uint64{"a:1#0": 10, "a:1#1": 30, "b:1#0": 20, "b:1#1": 40})}.New(Addrs("a:1", "b:1"))
	require.NoError(t, err)
	b, _ := p.Pick("15")
	assert.Equal(t, "b:1", b.Addr())
}
