package main

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Random streams: each use of randomness in the simulator has its own
// generator, seeded from the scenario's seed and the stream number, so
// that one use does not shift another. The workload (arrivals, keys,
// clients, request sizes) is drawn from one stream in arrival order: every
// strategy sees exactly the same requests.
const (
	streamWorkload = iota + 1
	streamRetry
	streamFailure
	streamHealth
	streamPicker // lb's pickers (their Rand)
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
	at     time.Duration // simulated time since the start
	key    int32         // index into the key space
	client int32
	z      float64 // standard normal: the request's size (service time = median × e^(σz))
}

// workload generates the arrivals of a scenario: Poisson arrivals at the
// scenario's rate, keys uniform or Zipf, clients uniform.
type workload struct {
	r       *rand.Rand
	zipf    *rand.Zipf
	rate    float64 // per nanosecond
	keys    uint64
	clients uint64
	t       float64 // nanoseconds
}

func newWorkload(sc *Scenario) *workload {
	w := &workload{
		r:       newRand(sc.Seed, streamWorkload),
		rate:    sc.Rate / 1e9,
		keys:    uint64(sc.Keys.Count),
		clients: uint64(sc.Clients),
	}
	if sc.Keys.Dist == "zipf" {
		w.zipf = rand.NewZipf(w.r, sc.Keys.S, 1, w.keys-1)
	}
	return w
}

// next returns the next arrival.
func (w *workload) next() arrival {
	w.t += w.r.ExpFloat64() / w.rate
	a := arrival{at: time.Duration(w.t)}
	if w.zipf != nil {
		a.key = int32(w.zipf.Uint64())
	} else {
		a.key = int32(w.r.Uint64N(w.keys))
	}
	a.client = int32(w.r.Uint64N(w.clients))
	a.z = w.r.NormFloat64()
	return a
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
