package lb

import (
	"strings"
	"testing"
)

// FuzzRing builds a ring over any addresses and weights (invalid ones must
// be rejected with an error, never a panic), then checks for any key that
// the answer is a member, that the preference list starts with it, and
// that removing a backend moves only that backend's keys.
//
// The input is a list of "addr/weight" entries separated by '|'.
func FuzzRing(f *testing.F) {
	f.Add("a:1/1|b:1/2|c:1/1", "user-1", uint8(4))
	f.Add("10.0.0.1:80/0|10.0.0.2:80/3", "", uint8(1))
	f.Add("node1:8/1|node1:81/1", "x", uint8(16))
	f.Add("[::1]:80/5|a:1/1|a:1/1", "k", uint8(2))
	f.Add(":80/1|a:/1| :1/1", "k", uint8(3))
	f.Fuzz(func(t *testing.T, spec, key string, replicas uint8) {
		var eps []Endpoint
		for _, part := range strings.Split(spec, "|") {
			addr, w, _ := strings.Cut(part, "/")
			weight := 0
			for _, c := range w {
				weight = weight*10 + int(c-'0')
				if weight > 1000 || weight < -1000 {
					break
				}
			}
			eps = append(eps, Endpoint{Addr: addr, Weight: weight})
			if len(eps) == 12 {
				break
			}
		}
		r := Ring{Replicas: int(replicas%32) + 1}
		p, err := r.New(eps)
		if err != nil {
			return // rejected: fine, as long as it did not panic
		}
		b, err := p.Pick(key)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		members := map[*Backend]bool{}
		for _, m := range p.Backends() {
			members[m] = true
		}
		if !members[b] {
			t.Fatalf("Pick returned %v, not a member", b)
		}
		prefs := p.AppendPreferences(nil, key, len(eps))
		if len(prefs) != len(p.Backends()) {
			t.Fatalf("%d preferences for %d backends", len(prefs), len(p.Backends()))
		}
		if key != "" && prefs[0] != b {
			t.Fatalf("preferences start with %v, Pick says %v", prefs[0], b)
		}
		if len(eps) < 2 || key == "" {
			return
		}
		// Remove one backend that is not the key's: the key stays put.
		// Remove the key's: it goes to its second preference.
		for _, gone := range []string{prefs[len(prefs)-1].Addr(), b.Addr()} {
			var rest []Endpoint
			for _, e := range eps {
				if e.Addr != gone {
					rest = append(rest, e)
				}
			}
			q, err := r.New(rest)
			if err != nil {
				t.Fatalf("the set minus %q was rejected: %v", gone, err)
			}
			got, _ := q.Pick(key)
			want := b.Addr()
			if gone == b.Addr() {
				want = prefs[1].Addr()
			}
			if got.Addr() != want {
				t.Fatalf("removing %q moved key %q from %q to %q, want %q", gone, key, b.Addr(), got.Addr(), want)
			}
		}
	})
}
