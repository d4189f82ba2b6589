package main

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/go-lb/lb"
)

// strategyNames are the strategies lbsim compares, in table order.
var strategyNames = []string{
	"round-robin", "weighted-round-robin", "random", "weighted-random",
	"p2c", "ring", "ring-bounded", "maglev",
}

// boundedLoadFactor is ring-bounded's lb.Ring.LoadFactor.
const boundedLoadFactor = 1.25

// builderFor returns the lb Builder of a strategy name, with lb's
// defaults and src as its random source, so that a run is repeated exactly
// from its seed (nil: the runtime's generator). A simulation runs in one
// goroutine, so every picker the Builder makes may share src. The round
// robins get one stripe: with one goroutine it is what they use anyway, and
// which stripe would depend on the goroutine's stack address.
func builderFor(name string, src rand.Source) (lb.Builder, error) {
	switch name {
	case "round-robin":
		return lb.RoundRobin{Stripes: 1, Rand: src}, nil
	case "weighted-round-robin":
		return lb.WeightedRoundRobin{Stripes: 1, Rand: src}, nil
	case "random":
		return lb.Random{Rand: src}, nil
	case "weighted-random":
		return lb.WeightedRandom{Rand: src}, nil
	case "p2c":
		return lb.P2C{Rand: src}, nil
	case "ring":
		return lb.Ring{Rand: src}, nil
	case "ring-bounded":
		return lb.Ring{LoadFactor: boundedLoadFactor, Rand: src}, nil
	case "maglev":
		return lb.Maglev{Rand: src}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q; the strategies are %s", name, strings.Join(strategyNames, ", "))
}

// hashes reports whether the strategy places keys (so that keys moved
// and key affinity mean something).
func hashes(name string) bool {
	return name == "ring" || name == "ring-bounded" || name == "maglev"
}
