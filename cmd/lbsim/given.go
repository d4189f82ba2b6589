package main

import (
	"bytes"
	"encoding/json"
)

// given records which fields of a JSON object were written, so that a
// field that was written keeps the value written, zero included, and only
// a missing field takes its default: a sigma of 0 means no spread, never
// the default 0.5. Scenarios built in Go (flags, tests) mark the fields
// they set with set.
type given map[string]bool

// has reports whether the field was written.
func (g given) has(name string) bool { return g[name] }

// set marks fields as written.
func (g *given) set(names ...string) {
	if *g == nil {
		*g = given{}
	}
	for _, n := range names {
		(*g)[n] = true
	}
}

// objectKeys returns the keys of a JSON object (nil if raw is not one).
func objectKeys(raw json.RawMessage) given {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil
	}
	g := given{}
	for k := range m {
		g[k] = true
	}
	return g
}

// objectField returns the raw value of a field of a JSON object.
func objectField(raw json.RawMessage, name string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m[name]
}

// arrayItems returns the raw items of a JSON array.
func arrayItems(raw json.RawMessage) []json.RawMessage {
	var a []json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &a) != nil {
		return nil
	}
	return a
}

// markGiven records, on a scenario decoded from data, which fields each of
// its objects had.
func (sc *Scenario) markGiven(data []byte) {
	raw := json.RawMessage(data)
	sc.given = objectKeys(raw)
	sc.Load.given = objectKeys(objectField(raw, "load"))
	sc.Keys.given = objectKeys(objectField(raw, "keys"))
	sc.Transport.given = objectKeys(objectField(raw, "transport"))
	for i, item := range arrayItems(objectField(raw, "backends")) {
		if i < len(sc.Backends) {
			sc.Backends[i].given = objectKeys(item)
		}
	}
	for i, item := range arrayItems(objectField(raw, "events")) {
		if i < len(sc.Events) {
			sc.Events[i].given = objectKeys(item)
		}
	}
}
