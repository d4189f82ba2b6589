package lb

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Locality turns on locality-aware balancing (WithLocality): the Balancer
// prefers the backends nearest to the client, and spills calls over to
// farther ones, or to those of a lower priority, as the near ones lose
// healthy capacity, as Envoy's priority levels do.
//
// Backends are grouped in tiers by their priority (the LabelPriority label:
// 0, the default, is the highest) and then by their proximity to the
// client (the LabelRegion, LabelZone and LabelSubZone labels against
// Region, Zone and SubZone): the first tier is the client's own zone (or
// sub-zone) at priority 0, then the rest of its region, then other
// regions, then the same at priority 1, and so on. A tier's health is
//
//	min(1, OverprovisioningFactor × available weight / weight)
//
// where available backends are those not ejected and not marked down. The
// first tier takes a share of the calls equal to its health; the next
// tier takes as much of the rest as its health allows, and so on: with
// the default factor of 1.4, a zone keeps all of its calls until less than
// 1/1.4 (71%) of its capacity is healthy, and then spills over in
// proportion to what it misses. If the tiers' healths add up to less than
// 1, each tier takes its health's share of the total, and a tier with
// less than PanicThreshold percent of its capacity available is used whole,
// healthy or not (its panic mode). If no backend is available at all, the
// first tier is used whole.
//
// The strategy runs within each tier: each tier has its own picker, built
// by the Balancer's Builder. Calls with a hash key choose their tier by
// the key's hash when the strategy hashes (Ring, Maglev), so each key stays
// on one tier and only the keys of the share that spills move; other calls
// choose by a low-discrepancy sequence, so the shares are met closely. A
// Balancer whose first tier takes every call picks exactly as one without
// locality. (Clients in different zones send one key to different
// backends: their first tiers differ. A Ring's LoadFactor bounds a tier's
// loads against the calls in flight of the whole Balancer, which is
// looser than the tier's own.)
//
// A field left "" is not compared: a client that sets only Zone treats
// every other zone as Remote; one that sets none treats every backend as
// Remote, and only priorities order the tiers. A backend without locality
// labels is Remote. A priority label that
// is not a decimal integer from 0 to 4294967295 fails the Update (and
// changes nothing). Balancer.Localities shows the tiers and their shares.
type Locality struct {
	// Region, Zone and SubZone are where the client runs, as the labels
	// LabelRegion, LabelZone and LabelSubZone describe backends. SubZone
	// needs Zone.
	Region, Zone, SubZone string
	// OverprovisioningFactor is how much capacity a tier is taken to have
	// to spare: a tier spills over when less than 1/factor of it is
	// healthy. From 1 to 100; 0 means 1.4 (Envoy's default).
	OverprovisioningFactor float64
	// PanicThreshold, in percent, applies when the tiers together have
	// too little healthy capacity: a tier with less than this share of its
	// capacity available is then used whole. From 0 to 100; 0 means 50
	// (Envoy's default); negative turns per-tier panic off.
	PanicThreshold float64
}

// WithLocality turns on locality-aware balancing; see Locality.
// NewBalancer returns its validation error.
func WithLocality(l Locality) Option {
	return optionFunc(func(o *options) { o.locality = &l })
}

func (l Locality) withDefaults() (Locality, error) {
	bad := func(format string, args ...any) (Locality, error) {
		return l, fmt.Errorf("%w: Locality."+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	f, pt := l.OverprovisioningFactor, l.PanicThreshold
	switch {
	case l.SubZone != "" && l.Zone == "":
		return bad("SubZone is %q but Zone is empty; a sub-zone is part of a zone", l.SubZone)
	case math.IsNaN(f) || f != 0 && (f < 1 || f > 100):
		return bad("OverprovisioningFactor is %v; it must be from 1 to 100 (0 means 1.4)", f)
	case math.IsNaN(pt) || math.IsInf(pt, 0) || pt > 100:
		return bad("PanicThreshold is %v; it must be at most 100 percent (0 means 50, negative turns it off)", pt)
	}
	if f == 0 {
		l.OverprovisioningFactor = 1.4
	}
	if pt == 0 {
		l.PanicThreshold = 50
	}
	return l, nil
}

// Proximity is how near a backend is to the client (see Locality).
type Proximity int

// Proximities, nearest first.
const (
	// SameSubZone: the client's zone and sub-zone.
	SameSubZone Proximity = iota
	// SameZone: the client's zone (another sub-zone, or the client
	// sets none).
	SameZone
	// SameRegion: the client's region, another zone.
	SameRegion
	// Remote: another region, or nothing known to be shared.
	Remote
)

// String returns the proximity's name ("same-zone").
func (p Proximity) String() string {
	switch p {
	case SameSubZone:
		return "same-subzone"
	case SameZone:
		return "same-zone"
	case SameRegion:
		return "same-region"
	case Remote:
		return "remote"
	}
	return "Proximity(" + strconv.Itoa(int(p)) + ")"
}

// proximity is the proximity of a backend with these labels.
func (l *Locality) proximity(labels map[string]string) Proximity {
	if l.Region != "" && labels[LabelRegion] != l.Region {
		return Remote
	}
	if l.Zone == "" || labels[LabelZone] != l.Zone {
		if l.Region != "" {
			return SameRegion
		}
		return Remote
	}
	if l.SubZone != "" && labels[LabelSubZone] == l.SubZone {
		return SameSubZone
	}
	return SameZone
}

// tierKey identifies a tier: the lower, the more preferred.
type tierKey struct {
	priority uint32
	prox     Proximity
}

func (a tierKey) compare(b tierKey) int {
	if a.priority != b.priority {
		if a.priority < b.priority {
			return -1
		}
		return 1
	}
	return int(a.prox) - int(b.prox)
}

// tierOf returns the tier of the endpoint at addr with these labels.
func (l *Locality) tierOf(addr string, labels map[string]string) (tierKey, error) {
	k := tierKey{prox: l.proximity(labels)}
	if v, ok := labels[LabelPriority]; ok {
		p, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return k, fmt.Errorf("%w: label %q of %q is %q; it must be a decimal integer from 0 (the highest priority, and the default) to 4294967295", ErrInvalidEndpoint, LabelPriority, addr, v)
		}
		k.priority = uint32(p)
	}
	return k, nil
}

// LocalityStats describes one locality tier of a Balancer (see Locality):
// its backends, its health, and the share of calls it takes now.
type LocalityStats struct {
	// Priority is the tier's priority (0 is the highest).
	Priority uint32
	// Proximity is how near the tier's backends are to the client.
	Proximity Proximity
	// Zones are the tier's distinct zones (LabelZone values, "" for
	// backends without one), sorted.
	Zones []string
	// Backends is the number of the tier's backends, Available the number
	// not ejected and not marked down.
	Backends, Available int
	// Health is min(1, OverprovisioningFactor × available weight /
	// weight).
	Health float64
	// Share is the fraction of calls the tier takes, from 0 to 1.
	Share float64
	// Panic reports that the tier is used whole, available or not.
	Panic bool
}

// Localities returns the Balancer's locality tiers, most preferred first,
// as of the current picker; nil without WithLocality (or with an empty
// set).
func (b *Balancer) Localities() []LocalityStats {
	ts := slices.Clone(b.snap.Load().tiers)
	for i := range ts {
		ts[i].Zones = slices.Clone(ts[i].Zones)
	}
	return ts
}

// tier is one tier while a picker is built.
type tier struct {
	key                 tierKey
	members, avail      []*Backend
	weight, availWeight float64
}

// buildLocality builds the snapshot of a Balancer with locality: a picker
// per tier that takes calls, and a localityPicker choosing among them (or
// the first tier's picker alone when it takes every call). It is called by
// buildSnapshot, with b.buildMu held, over a non-empty set.
func (b *Balancer) buildLocality(members []*Backend, gen uint64) (*snapshot, error) {
	l := b.opts.locality
	byKey := map[tierKey]*tier{}
	var tiers []*tier
	for _, be := range members {
		m := be.meta.Load()
		k, err := l.tierOf(be.addr, m.labels)
		if err != nil {
			return nil, err
		}
		t := byKey[k]
		if t == nil {
			t = &tier{key: k}
			byKey[k] = t
			tiers = append(tiers, t)
		}
		w := float64(m.weight)
		t.members = append(t.members, be)
		t.weight += w
		if be.available() {
			t.avail = append(t.avail, be)
			t.availWeight += w
		}
	}
	slices.SortFunc(tiers, func(a, b *tier) int { return a.key.compare(b.key) })

	stats := make([]LocalityStats, len(tiers))
	var sum float64
	for i, t := range tiers {
		h := min(1, l.OverprovisioningFactor*t.availWeight/t.weight)
		stats[i] = LocalityStats{Priority: t.key.priority, Proximity: t.key.prox, Zones: zonesOf(t.members),
			Backends: len(t.members), Available: len(t.avail), Health: h}
		sum += h
	}
	switch {
	case sum >= 1: // spill over: each tier takes what its health allows of the rest
		rest := 1.0
		for i := range stats {
			stats[i].Share = min(stats[i].Health, rest)
			rest = max(0, rest-stats[i].Share)
		}
	case sum > 0: // too little capacity: shares by health, and panic per tier
		for i, t := range tiers {
			stats[i].Share = stats[i].Health / sum
			stats[i].Panic = stats[i].Share > 0 && t.availWeight*100 < l.PanicThreshold*t.weight
		}
	default: // nothing available: the first tier, whole
		stats[0].Share, stats[0].Panic = 1, true
	}

	var (
		pickers []Picker
		shares  []float64
		used    []*Backend
		panics  bool
	)
	for i, t := range tiers {
		if stats[i].Share <= 0 {
			continue
		}
		set := t.avail
		if stats[i].Panic {
			set, panics = t.members, true
		}
		p, err := b.builder.Build(slices.Clone(set))
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fmt.Errorf("%w: the Builder returned a nil Picker", ErrInvalidConfig)
		}
		pickers, shares = append(pickers, p), append(shares, stats[i].Share)
		used = append(used, set...)
	}
	s := &snapshot{available: used, members: members, gen: gen, all: panics, tiers: stats}
	if len(pickers) == 1 {
		s.picker = pickers[0]
	} else {
		s.picker = newLocalityPicker(pickers, shares)
	}
	return s, nil
}

// zonesOf returns the distinct zones of bs, sorted.
func zonesOf(bs []*Backend) []string {
	var zs []string
	for _, be := range bs {
		z := be.meta.Load().labels[LabelZone]
		if !slices.Contains(zs, z) {
			zs = append(zs, z)
		}
	}
	slices.Sort(zs)
	return zs
}

// localityPicker chooses a tier, then asks the tier's picker. It is the
// Picker of a Balancer with locality whose calls spread over more than one
// tier.
//
// A call chooses its tier by a value u in [0, 2^64): the tier i with
// cum[i-1] <= u < cum[i]. Calls with a key, when the tiers' pickers hash,
// take u from the key's hash (scrambled, so that it is independent of the
// place the key's hash gives it within the tier); the others take it from
// a Weyl sequence (n × 2^64/φ, the golden ratio) per stripe, whose
// fractions are spread so evenly that after n calls each tier's count is
// within a few calls of its share, and which repeats exactly in a run
// that repeats (lbsim).
type localityPicker struct {
	pickers []Picker
	lists   []PreferenceLister // the pickers, when every one is a PreferenceLister
	cum     []uint64           // cumulative shares; the last is unused (the rest)
	st      stripes
}

// weyl is 2^64/φ, rounded to odd.
const weyl = 0x9e3779b97f4a7c15

// newLocalityPicker returns a Picker over pickers (at least two) with
// these shares of the calls.
func newLocalityPicker(pickers []Picker, shares []float64) Picker {
	p := &localityPicker{pickers: pickers, cum: make([]uint64, len(pickers)), st: newStripes(0, 0, randSource{})}
	var total, acc float64
	for _, s := range shares {
		total += s
	}
	for i, s := range shares {
		acc += s / total
		if v := acc * 0x1p64; v >= 0x1p64 {
			p.cum[i] = math.MaxUint64
		} else {
			p.cum[i] = uint64(v)
		}
	}
	lists := make([]PreferenceLister, len(pickers))
	for i, q := range pickers {
		pl, ok := q.(PreferenceLister)
		if !ok {
			return p
		}
		lists[i] = pl
	}
	p.lists = lists
	return localityHashPicker{p}
}

// tier returns the index of the tier a call with key goes to.
func (p *localityPicker) tier(key string) int {
	var u uint64
	if p.lists != nil && key != "" {
		u = mix64(xxhash.Sum64String(key))
	} else {
		u = p.st.next() * weyl
	}
	last := len(p.cum) - 1
	for i, c := range p.cum[:last] {
		if u < c {
			return i
		}
	}
	return last
}

// Pick implements Picker: the picker of the call's tier chooses.
func (p *localityPicker) Pick(key string) (*Backend, error) {
	return p.pickers[p.tier(key)].Pick(key)
}

// localityHashPicker is a localityPicker over hash pickers: it lists a
// key's preferences too, its tier's first, then the other tiers' in
// order, so that retries and backends out of the picker go to the key's
// next backend in its tier before another tier.
type localityHashPicker struct{ *localityPicker }

// AppendPreferences implements PreferenceLister.
func (p localityHashPicker) AppendPreferences(dst []*Backend, key string, n int) []*Backend {
	start, first := len(dst), p.tier(key)
	dst = p.lists[first].AppendPreferences(dst, key, n)
	for i, pl := range p.lists {
		if got := len(dst) - start; got >= n {
			break
		} else if i != first {
			dst = pl.AppendPreferences(dst, key, n-got)
		}
	}
	return dst
}
