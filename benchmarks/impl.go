package benchmarks

import "fmt"

// Workload names a kind of work that lb and its peers both do.
type Workload string

// The workloads. Each speed benchmark is named
// Benchmark<Peer>/<workload>/<row>/N=<n>/<serial|parallel>.
const (
	RoundRobin     Workload = "roundrobin"      // next backend in turn
	Random         Workload = "random"          // uniform random backend
	WeightedRR     Workload = "weighted-rr"     // smooth weighted round robin (nginx)
	WeightedRandom Workload = "weighted-random" // random in proportion to weight
	Hash           Workload = "hash"            // key -> backend, consistently
)

// Workloads lists the workloads in report order.
var Workloads = []Workload{RoundRobin, Random, WeightedRR, WeightedRandom, Hash}

// KeyPicker maps a key to a backend address.
type KeyPicker interface {
	Get(key string) string
}

// SeqPicker returns the backend address for the next call.
type SeqPicker interface {
	Next() string
}

// Impl is one row of the report: a library (lb or a peer) with stated
// settings, doing one workload.
type Impl struct {
	Workload Workload
	// ID is the row's name in benchmark names ("lb", "groupcache-r50").
	ID string
	// Library is the import path of the package doing the work.
	Library string
	// Module is the module path, for the version column.
	Module string
	// Settings states the configuration (replicas, table size, hash).
	Settings string
	// Lb marks lb's own rows.
	Lb bool
	// Baseline marks a row that is not a library (the bare atomic counter):
	// shown for reference, never the "best peer".
	Baseline bool
	// Kind is a Hash row's algorithm: "ring" (points on a circle),
	// "maglev", "jump" or "rendezvous", to compare lb's rows with the peers
	// of the same kind as well as with the best of all.
	Kind string
	// Unsafe is set when the library is not safe for concurrent use: its
	// parallel benchmark adds a sync.Mutex, as its users must.
	Unsafe bool
	// Limit returns why the row cannot run at n backends (nil: it can).
	Limit func(n int) error
	// QualityLimit returns why the quality report skips the row at n
	// backends (nil: it does not), for rows too slow to look up millions of
	// keys there.
	QualityLimit func(n int) error
	// NewKeyed builds a Hash row over names; NewSeq builds the others
	// (weights is nil for unweighted workloads).
	NewKeyed func(names []string) (KeyPicker, error)
	NewSeq   func(names []string, weights []int) (SeqPicker, error)
	// Successive, when set, returns a NewKeyed whose builds continue one
	// another (a strategy that keeps the history of its sets): the quality
	// report builds N-1, N and N+1 backends through one of them.
	Successive func() func(names []string) (KeyPicker, error)
}

// Supports reports whether the row can run at n backends, and why not.
func (im Impl) Supports(n int) error {
	if im.Limit == nil {
		return nil
	}
	return im.Limit(n)
}

// Impls returns every row of the report, lb's first within each workload.
func Impls() []Impl {
	var all []Impl
	for _, list := range [][]Impl{
		lbImpls(),
		atomicImpls(),
		gokitImpls(),
		smallnestImpls(),
		groupcacheImpls(),
		stathatImpls(),
		buraksezerImpls(),
		serialxImpls(),
		lafiklImpls(),
		maglevImpls(),
		jumpImpls(),
		rendezvousImpls(),
	} {
		all = append(all, list...)
	}
	return all
}

// ImplsOf returns the rows of one workload, in report order.
func ImplsOf(w Workload) []Impl {
	var out []Impl
	for _, im := range Impls() {
		if im.Workload == w {
			out = append(out, im)
		}
	}
	return out
}

// Lookup returns the row of workload w named id.
func Lookup(w Workload, id string) (Impl, bool) {
	for _, im := range Impls() {
		if im.Workload == w && im.ID == id {
			return im, true
		}
	}
	return Impl{}, false
}

// recoverError turns a panic of a peer's constructor into an error: some
// peers panic on configurations they cannot hold.
func recoverError(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panics: %v", r)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
