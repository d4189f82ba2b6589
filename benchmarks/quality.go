package benchmarks

import (
	"fmt"
	"math"
)

// QualityKeys is the least number of keys of the quality report; at N
// backends it uses KeysFor(N, QualityKeys).
const QualityKeys = 1_000_000

// KeysFor returns the keys the quality report uses at n backends: at least
// base, and 10,000 per backend (10M at N=1,000), so that the keys' own
// noise (about 1/√(keys/N)) stays near 1% and max/mean measures the
// algorithm.
func KeysFor(n, base int) int { return max(base, 10_000*n) }

// QualitySeed seeds the quality report's keys.
const QualitySeed = 2016

// Assign returns the backend of every key.
func Assign(p KeyPicker, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p.Get(k)
	}
	return out
}

// LoadStats describes how evenly keys spread over backends.
type LoadStats struct {
	MaxMean float64 // keys of the busiest backend / mean keys per backend
	MinMean float64 // keys of the idlest backend / mean
	SDMean  float64 // standard deviation of keys per backend / mean
}

// Load computes the spread of an assignment over names. A backend that
// gets no key counts as 0; a key assigned to a name not in names is an
// error.
func Load(assign []string, names []string) (LoadStats, error) {
	count := make(map[string]int, len(names))
	for _, n := range names {
		count[n] = 0
	}
	for i, a := range assign {
		c, ok := count[a]
		if !ok {
			return LoadStats{}, fmt.Errorf("key %d assigned to %q, not a backend", i, a)
		}
		count[a] = c + 1
	}
	return loadOf(count, float64(len(assign))/float64(len(names))), nil
}

func loadOf(count map[string]int, mean float64) LoadStats {
	st := LoadStats{MinMean: math.Inf(1)}
	var ss float64
	for _, c := range count {
		r := float64(c) / mean
		st.MaxMean = max(st.MaxMean, r)
		st.MinMean = min(st.MinMean, r)
		d := float64(c) - mean
		ss += d * d
	}
	st.SDMean = math.Sqrt(ss/float64(len(count))) / mean
	return st
}

// MoveStats describes the keys that changed backend between two
// assignments of the same keys.
type MoveStats struct {
	Moved float64 // fraction of keys whose backend changed
	Ideal float64 // the least fraction that must move
	Stray float64 // fraction of keys moved between two backends present before and after
}

// Ratio is Moved / Ideal.
func (m MoveStats) Ratio() float64 { return m.Moved / m.Ideal }

// Movement compares the assignments before and after a membership change:
// added (or removed, if removal) is the backend that joined or left, n the
// number of backends before. Adding one backend to n must move at least
// 1/(n+1) of the keys (its fair share); removing one of n, at least 1/n
// (the keys it held).
func Movement(before, after []string, changed string, removal bool, n int) MoveStats {
	var moved, stray int
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		moved++
		if (removal && before[i] != changed) || (!removal && after[i] != changed) {
			stray++
		}
	}
	total := float64(len(before))
	ideal := 1 / float64(n+1)
	if removal {
		ideal = 1 / float64(n)
	}
	return MoveStats{Moved: float64(moved) / total, Ideal: ideal, Stray: float64(stray) / total}
}

// HashQuality is one hash row's quality at N backends.
type HashQuality struct {
	N      int
	Load   LoadStats
	Add    MoveStats // N -> N+1 (backend N appended)
	Remove MoveStats // N -> N-1 (the last backend removed)
	Err    error     // the row cannot run at N (or N±1)
}

// MeasureHash computes a hash row's balance and key movement at n backends
// over keys. Backends are added and removed at the end of the list, the
// only change jump hashing supports; for the others the position does not
// matter.
func MeasureHash(im Impl, n int, keys []string) HashQuality {
	q := HashQuality{N: n}
	for _, m := range []int{n - 1, n, n + 1} {
		if err := im.Supports(m); err != nil {
			q.Err = err
			return q
		}
	}
	if im.QualityLimit != nil {
		if err := im.QualityLimit(n); err != nil {
			q.Err = err
			return q
		}
	}
	names := Names(n + 1)
	build := im.NewKeyed
	if im.Successive != nil {
		build = im.Successive()
	}
	var assign [3][]string // n-1, n, n+1 backends, built in that order
	for i := range assign {
		p, err := build(names[:n-1+i])
		if err != nil {
			q.Err = err
			return q
		}
		assign[i] = Assign(p, keys)
	}
	var err error
	if q.Load, err = Load(assign[1], names[:n]); err != nil {
		q.Err = err
		return q
	}
	q.Add = Movement(assign[1], assign[2], names[n], false, n)
	q.Remove = Movement(assign[1], assign[0], names[n-1], true, n)
	return q
}

// WeightedQuality is a weighted row's quality over one weight set.
type WeightedQuality struct {
	Weights string // the weight set, described
	Picks   int
	// ShareErr is the largest relative error of a backend's share of the
	// picks against weight/sum(weights): 0 is exact.
	ShareErr float64
	// MaxZ is the largest gap between a backend's picks and its share, in
	// standard deviations of a fair random sampler's count (binomial): a
	// fair random sampler gives about 1.5 to 3.5 (the extreme of N
	// normal draws); a round robin, 0.
	MaxZ float64
	// LongestRun is the longest run of picks of one backend over the
	// whole stream (runs that cross a period's end included: that is what
	// a backend sees in steady state).
	LongestRun int
	// IdealRun is the shortest longest run the weights allow in a repeating
	// sequence: ceil(the heaviest backend's picks per period / the others'
	// picks per period).
	IdealRun int
	// First is the first period's sequence when there are at most 3
	// backends (a, b, c), else "".
	First string
}

// WeightSet is a set of weights for the weighted quality report.
type WeightSet struct {
	Name    string
	Weights []int
}

// WeightSets are the weight sets of the weighted quality report: nginx's
// example and the benchmarks' 1 + i%5 at each quality size.
func WeightSets() []WeightSet {
	sets := []WeightSet{{Name: "{5,1,1} (nginx's example)", Weights: []int{5, 1, 1}}}
	for _, n := range QualitySizes {
		sets = append(sets, WeightSet{Name: fmt.Sprintf("N=%d, weights 1+i%%5", n), Weights: Weights(n)})
	}
	return sets
}

// MeasureWeighted draws picks from a weighted row over ws and measures
// its shares and smoothness. For round robin, picks should be a whole
// number of periods (Period); for random rows, any large count.
func MeasureWeighted(im Impl, ws WeightSet, picks int) (WeightedQuality, error) {
	names := Names(len(ws.Weights))
	p, err := im.NewSeq(names, ws.Weights)
	if err != nil {
		return WeightedQuality{}, err
	}
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[n] = i
	}
	var total int
	for _, w := range ws.Weights {
		total += w
	}
	q := WeightedQuality{Weights: ws.Name, Picks: picks}
	count := make([]int, len(names))
	var run, last int = 0, -1
	period := ws.Period()
	for t := 1; t <= picks; t++ {
		name := p.Next()
		i, ok := idx[name]
		if !ok {
			return q, fmt.Errorf("pick %d: %q is not a backend", t, name)
		}
		count[i]++
		if i == last {
			run++
		} else {
			run, last = 1, i
		}
		q.LongestRun = max(q.LongestRun, run)
		if len(names) <= 3 && t <= period {
			q.First += string(rune('a' + i))
		}
	}
	for i, c := range count {
		want := float64(picks) * float64(ws.Weights[i]) / float64(total)
		q.ShareErr = max(q.ShareErr, math.Abs(float64(c)-want)/want)
		p := float64(ws.Weights[i]) / float64(total)
		if sd := math.Sqrt(float64(picks) * p * (1 - p)); sd > 0 {
			q.MaxZ = max(q.MaxZ, math.Abs(float64(c)-want)/sd)
		}
	}
	g := gcdAll(ws.Weights)
	heavy := 0
	for _, w := range ws.Weights {
		heavy = max(heavy, w/g)
	}
	if others := total/g - heavy; others > 0 {
		q.IdealRun = (heavy + others - 1) / others
	} else {
		q.IdealRun = picks
	}
	return q, nil
}

// Period returns the length of the smooth weighted round robin's period
// over ws: the sum of the weights divided by their greatest common divisor.
func (ws WeightSet) Period() int {
	var total int
	for _, w := range ws.Weights {
		total += w
	}
	return total / gcdAll(ws.Weights)
}

func gcdAll(ws []int) int {
	g := 0
	for _, w := range ws {
		for b := w; b != 0; {
			g, b = b, g%b
		}
	}
	return max(g, 1)
}
