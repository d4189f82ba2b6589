package lb

// Picker chooses a backend for one call. A Picker is an immutable snapshot
// over a fixed set of backends: it is safe for concurrent use, and Pick
// allocates nothing.
//
// key is the call's hash key (a user ID, a session, a cache key); it is
// empty when the call has none. Strategies that do not hash ignore it; hash
// strategies pick at random when it is empty.
type Picker interface {
	Pick(key string) (*Backend, error)
}

// PreferenceLister is implemented by the hash strategies' pickers (RingPicker,
// MaglevPicker, AnchorPicker). AppendPreferences appends to dst up to n distinct backends
// in the key's order of preference, the first being the one Pick returns,
// and returns the extended slice. It allocates nothing when dst has room
// for n more elements. Use it to place replicas of data on n nodes, or to
// retry a keyed call on the key's next backend.
type PreferenceLister interface {
	AppendPreferences(dst []*Backend, key string, n int) []*Backend
}

// Builder turns a set of backends into a Picker. The slice passed to Build
// is owned by the Builder from then on, and is never empty when a Balancer
// calls Build. Each strategy in this package is a Builder: a small
// configuration struct whose zero value means the defaults.
type Builder interface {
	Build(backends []*Backend) (Picker, error)
}

// BackendLister is implemented by every picker of this package: Backends
// returns the backends the picker was built over (the slice must not be
// modified). Use it to see what a Builder made of a set.
type BackendLister interface {
	Backends() []*Backend
}

// TotalLoadBuilder is implemented by a Builder whose pickers read the
// total of the calls in flight over their backends (Backend.TotalInFlight),
// as bounded loads do: a Balancer keeps that total only when its Builder
// asks for it, since one shared counter costs every pick some contention.
type TotalLoadBuilder interface {
	Builder
	NeedsTotalLoad() bool
}
