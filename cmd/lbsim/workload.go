package main

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Random streams: each use of randomness in the simulator has its own
// generator, seeded from the scenario's seed and the stream number, so
// that one use does not shift another. An open loop's workload (release
// times, keys, clients, request sizes) is drawn from one stream in release
// order, and a closed loop's from one stream per worker, in the worker's
// order: every strategy sees the same requests.
const (
	streamWorkload = iota + 1
	streamRetry
	streamFailure
	streamHealth
	streamPicker // lb's pickers (their Rand)
	streamWorker // + the worker's number: a closed loop's workers
)

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(newSource(seed, stream))
}

// newSource is the generator of one stream.
func newSource(seed uint64, stream uint64) *rand.PCG {
	return rand.NewPCG(seed, stream*0x9e3779b97f4a7c15)
}

// arrival is one request as the workload makes it.
type arrival struct {
	at     time.Duration // release time, since the start (open loop)
	key    int32         // index into the key space
	client int32
	z      float64 // standard normal: the request's size (service time = median × e^(σz))
}

// workload draws requests: an open loop's releases (Poisson or paced, at
// the scenario's rate over all clients, each to a uniform client), or a
// closed-loop worker's requests.
type workload struct {
	r       *rand.Rand
	zipf    *rand.Zipf
	paced   bool
	rate    float64 // per nanosecond
	keys    uint64
	clients uint64
	t       float64 // nanoseconds
	n       float64 // releases so far (paced)
}

func newWorkload(sc *Scenario) *workload {
	return newWorkloadFrom(sc, newRand(sc.Seed, streamWorkload))
}

// newWorkerLoad returns the workload of closed-loop worker w.
func newWorkerLoad(sc *Scenario, w int) *workload {
	return newWorkloadFrom(sc, newRand(sc.Seed, streamWorker+uint64(w)))
}

func newWorkloadFrom(sc *Scenario, r *rand.Rand) *workload {
	w := &workload{
		r:       r,
		paced:   sc.Load.Arrivals == arrivalsPaced,
		rate:    sc.Load.Rate / 1e9,
		keys:    uint64(sc.Keys.Count),
		clients: uint64(sc.Clients),
	}
	if sc.Keys.Dist == "zipf" {
		w.zipf = rand.NewZipf(w.r, sc.Keys.S, 1, w.keys-1)
	}
	return w
}

// next returns the next release of an open loop.
func (w *workload) next() arrival {
	if w.paced {
		w.n++
		w.t = w.n / w.rate
	} else {
		w.t += w.r.ExpFloat64() / w.rate
	}
	a := arrival{at: time.Duration(w.t)}
	a.key = w.key()
	a.client = int32(w.r.Uint64N(w.clients))
	a.z = w.r.NormFloat64()
	return a
}

// request returns a closed-loop worker's next request: its key and size.
func (w *workload) request() (key int32, z float64) {
	key = w.key()
	return key, w.r.NormFloat64()
}

func (w *workload) key() int32 {
	if w.zipf != nil {
		return int32(w.zipf.Uint64())
	}
	return int32(w.r.Uint64N(w.keys))
}

// keyNames returns the key strings of a key space of n keys.
func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	return keys
}

// serviceTime is median × factor × e^(σz), at least 1µs.
func serviceTime(median time.Duration, factor, sigma, z float64) time.Duration {
	d := time.Duration(float64(median) * factor * math.Exp(sigma*z))
	return max(d, time.Microsecond)
}
