package main

import (
	"fmt"
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

// builderFor returns the lb Builder of a strategy name, with lb's defaults.
func builderFor(name string) (lb.Builder, error) {
	switch name {
	case "round-robin":
		return lb.RoundRobin{}, nil
	case "weighted-round-robin":
		return lb.WeightedRoundRobin{}, nil
	case "random":
		return lb.Random{}, nil
	case "weighted-random":
		return lb.WeightedRandom{}, nil
	case "p2c":
		return lb.P2C{}, nil
	case "ring":
		return lb.Ring{}, nil
	case "ring-bounded":
		return lb.Ring{LoadFactor: boundedLoadFactor}, nil
	case "maglev":
		return lb.Maglev{}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q; the strategies are %s", name, strings.Join(strategyNames, ", "))
}

// hashes reports whether the strategy places keys (so that keys moved
// and key affinity mean something).
func hashes(name string) bool {
	return name == "ring" || name == "ring-bounded" || name == "maglev"
}

// deterministic reports whether the strategy's choices depend only on the
// simulation (keys, calls in flight), not on lb's internal random source:
// round robin starts at a random backend, random and P2C draw from the
// runtime's generator.
func deterministic(name string) bool { return hashes(name) }
