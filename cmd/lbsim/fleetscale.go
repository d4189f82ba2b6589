package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/go-lb/lb"
)

// Large fleets: subsetting (lb.WithSubset) and locality (lb.WithLocality),
// each client with its own index and zone.

// SubsetConfig is lb.Subset, for every client: client i has ClientIndex i
// and ClientCount the scenario's clients.
type SubsetConfig struct {
	// Size is the number of backends each client uses (lb's Subset.Size).
	Size int `json:"size"`
	// Ordinals gives every backend an ordinal (its number in the fleet;
	// a backend that replaces another takes its ordinal), in the endpoint
	// label "ordinal", which lb.Subset.OrdinalLabel names.
	Ordinals bool `json:"ordinals"`
	// ByHash is lb.Subset.ByHash: place backends by their hash names.
	ByHash bool `json:"by_hash"`
}

// LocalityConfig is lb.Locality, for every client in its zone.
type LocalityConfig struct {
	OverprovisioningFactor float64 `json:"overprovisioning_factor"`
	PanicThreshold         float64 `json:"panic_threshold"`
}

// ordinalLabel is the endpoint label of the backends' ordinals.
const ordinalLabel = "ordinal"

// fleetDefaults validates the subset, client zones and locality.
func (sc *Scenario) fleetDefaults() error {
	if len(sc.ClientZones) > 0 {
		if len(sc.ClientZones) > sc.Clients {
			return fmt.Errorf("client_zones has %d zones for %d clients; each zone needs a client", len(sc.ClientZones), sc.Clients)
		}
		for i, z := range sc.ClientZones {
			if z == "" || slices.Contains(sc.ClientZones[:i], z) {
				return fmt.Errorf("client_zones[%d] is %q; zones must be distinct and not empty", i, z)
			}
		}
	} else if sc.given.has("client_zones") {
		return errors.New("client_zones is empty; omit it when the clients have no zone")
	}
	if sc.Locality != nil && len(sc.ClientZones) == 0 {
		return errors.New("locality needs client_zones: the zones the clients run in")
	}
	return nil
}

// clientZone is the zone client ci runs in ("" without client_zones).
func (sc *Scenario) clientZone(ci int) string {
	if len(sc.ClientZones) == 0 {
		return ""
	}
	return sc.ClientZones[ci*len(sc.ClientZones)/sc.Clients]
}

// clientOptions returns the lb.Options of client ci's own: its subset
// (with its index) and its locality (with its zone).
func (sc *Scenario) clientOptions(ci int) []lb.Option {
	var opts []lb.Option
	if s := sc.Subset; s != nil {
		sub := lb.Subset{Size: s.Size, ClientIndex: ci, ClientCount: sc.Clients, ByHash: s.ByHash}
		if s.Ordinals {
			sub.OrdinalLabel = ordinalLabel
		}
		opts = append(opts, lb.WithSubset(sub))
	}
	if l := sc.Locality; l != nil {
		opts = append(opts, lb.WithLocality(lb.Locality{Zone: sc.clientZone(ci), OverprovisioningFactor: l.OverprovisioningFactor, PanicThreshold: l.PanicThreshold}))
	}
	return opts
}

// endpoint is backend b's lb.Endpoint: its name as the hash name, its
// zone and ordinal as labels.
func (b *simBackend) endpoint() lb.Endpoint {
	e := lb.Endpoint{Addr: b.addr, Weight: b.weight, HashKey: b.name}
	if b.zone != "" || b.ordinal >= 0 {
		e.Labels = map[string]string{}
		if b.zone != "" {
			e.Labels[lb.LabelZone] = b.zone
		}
		if b.ordinal >= 0 {
			e.Labels[ordinalLabel] = strconv.Itoa(b.ordinal)
		}
	}
	return e
}

// members returns, per client, the backends its Balancer uses (its
// subset), as indexes of s.backends, sorted.
func (s *sim) members() [][]int32 {
	out := make([][]int32, len(s.clients))
	for ci, c := range s.clients {
		bs := c.bal.Backends()
		m := make([]int32, len(bs))
		for i, be := range bs {
			m[i] = s.byAddr[be.Addr()]
		}
		slices.Sort(m)
		out[ci] = m
	}
	return out
}

// pairsMoved compares the client–backend pairs of two memberships: the
// pairs that are new, and those that had to be (one per pair of a backend
// that left the set).
func pairsMoved(before, after [][]int32, gone map[int32]bool) (moved, must int) {
	for ci := range before {
		for _, b := range before[ci] {
			if gone[b] {
				must++
			}
		}
		for _, b := range after[ci] {
			if _, found := slices.BinarySearch(before[ci], b); !found {
				moved++
			}
		}
	}
	return moved, must
}

// clientsPerBackend counts, per backend, the clients whose Balancer uses
// it.
func clientsPerBackend(m [][]int32, n int) []int {
	out := make([]int, n)
	for _, bs := range m {
		for _, b := range bs {
			out[b]++
		}
	}
	return out
}
