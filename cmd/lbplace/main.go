// Command lbplace tells where keys land under a placement scheme, and what
// would move between two: run it before migrating a fleet to lb (or from
// one scheme or node set to another).
//
// Placement: keys on stdin, one a line; each key's node on stdout, one a
// line:
//
//	go run ./cmd/lbplace -scheme S [-replicas R] [-weights w1,w2,...] -nodes n1,n2,...
//
// Movement: the same, with -to (another scheme) and/or -to-nodes (another
// node set); it prints how many of the keys would move:
//
//	go run ./cmd/lbplace -scheme groupcache -nodes a,b,c -to lb < keys
//	go run ./cmd/lbplace -scheme lb -nodes a,b,c -to-nodes a,b,c,d < keys
//
// Nodes are named as the scheme names them (lb's Endpoint.HashKey): a
// groupcache peer URL, nginx's server text, a ring_hash endpoint's address
// or hash key. The schemes:
//
//	lb          lb.Ring{} (xxhash64; -replicas: points per unit of weight)
//	lb-crc32    lb.Ring{Hash: lb.CRC32}
//	maglev      lb.Maglev{}
//	anchor      lb.Anchor (with -to-nodes, the second set continues the first's history)
//	groupcache  groupcache's consistenthash (-replicas, default 50)
//	stathat     stathat/consistent (-replicas, default 20)
//	nginx       nginx's "hash $key consistent" (-weights: server weights)
//	envoy       Envoy's ring_hash (min 1,024, max 8,388,608 points)
//	grpc        gRPC's ring_hash (min 1,024, max 4,096 points)
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/go-lb/lb"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lbplace:", err)
		os.Exit(2)
	}
}

// placement is one scheme over one node set.
type placement struct {
	scheme   string
	replicas int
	nodes    []string
	weights  []int
}

// schemes maps each scheme's name to its Builder, given -replicas.
var schemes = map[string]func(replicas int) (lb.Builder, error){
	"lb":         func(r int) (lb.Builder, error) { return lb.Ring{Replicas: r}, nil },
	"lb-crc32":   func(r int) (lb.Builder, error) { return lb.Ring{Replicas: r, Hash: lb.CRC32}, nil },
	"maglev":     noReplicas("maglev", lb.Maglev{}),
	"anchor":     noReplicas("anchor", &lb.Anchor{}),
	"groupcache": func(r int) (lb.Builder, error) { return lb.Ring{Compat: lb.CompatGroupcache, Replicas: r}, nil },
	"stathat":    func(r int) (lb.Builder, error) { return lb.Ring{Compat: lb.CompatStathat, Replicas: r}, nil },
	"nginx":      noReplicas("nginx", lb.Ring{Compat: lb.CompatNginx}),
	"envoy":      noReplicas("envoy", lb.Ring{Compat: lb.CompatRingHash, MaxRingSize: lb.MaxRingHashSize}),
	"grpc":       noReplicas("grpc", lb.Ring{Compat: lb.CompatRingHash}),
}

const schemeNames = "lb, lb-crc32, maglev, anchor, groupcache, stathat, nginx, envoy, grpc"

func noReplicas(name string, b lb.Builder) func(int) (lb.Builder, error) {
	return func(r int) (lb.Builder, error) {
		if r != 0 {
			return nil, fmt.Errorf("-replicas: scheme %s has no replica count", name)
		}
		if _, ok := b.(*lb.Anchor); ok {
			return &lb.Anchor{}, nil // a fresh history per run
		}
		return b, nil
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lbplace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var from, to placement
	var nodes, weights, toNodes, toWeights string
	fs.StringVar(&from.scheme, "scheme", "lb", "placement scheme: "+schemeNames)
	fs.IntVar(&from.replicas, "replicas", 0, "points per node (per unit of weight), for lb, lb-crc32, groupcache, stathat; 0: the scheme's default")
	fs.StringVar(&nodes, "nodes", "", "comma-separated node names")
	fs.StringVar(&weights, "weights", "", "comma-separated weights, one per node (default: all 1)")
	fs.StringVar(&to.scheme, "to", "", "movement mode: the scheme to compare with (default: -scheme)")
	fs.IntVar(&to.replicas, "to-replicas", -1, "-replicas of the compared placement (default: -replicas)")
	fs.StringVar(&toNodes, "to-nodes", "", "movement mode: the node set to compare with (default: -nodes)")
	fs.StringVar(&toWeights, "to-weights", "", "weights of -to-nodes (default: -weights when the nodes are the same)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: keys come on stdin", fs.Arg(0))
	}
	var err error
	if from.nodes, from.weights, err = parseNodes("-nodes", nodes, "-weights", weights); err != nil {
		return err
	}
	src, err := from.picker(nil)
	if err != nil {
		return err
	}
	if to.scheme == "" && toNodes == "" {
		return place(stdin, stdout, src)
	}
	if to.scheme == "" {
		to.scheme = from.scheme
	}
	if to.replicas < 0 {
		to.replicas = from.replicas
	}
	to.nodes, to.weights = from.nodes, from.weights
	if toNodes != "" {
		if toWeights == "" && toNodes == nodes {
			toWeights = weights
		}
		if to.nodes, to.weights, err = parseNodes("-to-nodes", toNodes, "-to-weights", toWeights); err != nil {
			return err
		}
	}
	var history *lb.Anchor
	if to.scheme == from.scheme {
		history = src.anchor // continue the same Anchor's history
	}
	dst, err := to.picker(history)
	if err != nil {
		return err
	}
	return move(stdin, stdout, src, dst)
}

func parseNodes(nodesFlag, list, weightsFlag, weights string) ([]string, []int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil, fmt.Errorf("%s: no nodes given", nodesFlag)
	}
	names := strings.Split(list, ",")
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" {
			return nil, nil, fmt.Errorf("%s: an empty node name in %q", nodesFlag, list)
		}
		if seen[n] {
			return nil, nil, fmt.Errorf("%s: node %q appears twice", nodesFlag, n)
		}
		seen[n] = true
	}
	ws := make([]int, len(names))
	if weights == "" {
		return names, ws, nil
	}
	parts := strings.Split(weights, ",")
	if len(parts) != len(names) {
		return nil, nil, fmt.Errorf("%s: %d weights for %d nodes", weightsFlag, len(parts), len(names))
	}
	for i, p := range parts {
		w, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || w < 1 || w > lb.MaxWeight {
			return nil, nil, fmt.Errorf("%s: weight %q of node %q must be an integer from 1 to %d", weightsFlag, p, names[i], lb.MaxWeight)
		}
		ws[i] = w
	}
	return names, ws, nil
}

// built is a picker and, for the anchor scheme, the Anchor that holds its
// history.
type built struct {
	p      lb.Picker
	anchor *lb.Anchor
}

func (pl placement) picker(history *lb.Anchor) (built, error) {
	mk, ok := schemes[pl.scheme]
	if !ok {
		return built{}, fmt.Errorf("-scheme: unknown scheme %q; the schemes are %s", pl.scheme, schemeNames)
	}
	b, err := mk(pl.replicas)
	if err != nil {
		return built{}, err
	}
	a, isAnchor := b.(*lb.Anchor)
	if isAnchor && history != nil {
		b, a = history, history
	}
	eps := make([]lb.Endpoint, len(pl.nodes))
	for i, n := range pl.nodes {
		// The address is a stand-in: every scheme places by the hash name.
		eps[i] = lb.Endpoint{Addr: "node" + strconv.Itoa(i) + ".lbplace:1", HashKey: n, Weight: pl.weights[i]}
	}
	bs, err := lb.NewBackends(eps)
	if err != nil {
		return built{}, fmt.Errorf("-nodes: %w", err)
	}
	p, err := b.Build(bs)
	if err != nil {
		return built{}, fmt.Errorf("-scheme %s: %w", pl.scheme, err)
	}
	out := built{p: p}
	if isAnchor {
		out.anchor = a
	}
	return out, nil
}

// keys calls f with each key on r (lines, without their end of line).
func keys(r io.Reader, f func(key string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		k := strings.TrimSuffix(sc.Text(), "\r")
		if k == "" {
			return fmt.Errorf("stdin line %d: empty key (lb places calls without a key at random)", line)
		}
		if err := f(k); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("stdin line %d: a key longer than 1 MiB", line+1)
		}
		return err
	}
	return nil
}

func node(p lb.Picker, key string) (string, error) {
	b, err := p.Pick(key)
	if err != nil {
		return "", err
	}
	return b.HashName(), nil
}

func place(stdin io.Reader, stdout io.Writer, src built) error {
	w := bufio.NewWriter(stdout)
	err := keys(stdin, func(k string) error {
		n, err := node(src.p, k)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, n)
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func move(stdin io.Reader, stdout io.Writer, src, dst built) error {
	inDst := map[string]bool{}
	for _, b := range backendsOf(dst.p) {
		inDst[b] = true
	}
	inSrc := map[string]bool{}
	for _, b := range backendsOf(src.p) {
		inSrc[b] = true
	}
	var total, moved, stray int
	err := keys(stdin, func(k string) error {
		a, err := node(src.p, k)
		if err != nil {
			return err
		}
		b, err := node(dst.p, k)
		if err != nil {
			return err
		}
		total++
		if a != b {
			moved++
			if inDst[a] && inSrc[b] {
				stray++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	pct := func(n int) float64 {
		if total == 0 {
			return 0
		}
		return 100 * float64(n) / float64(total)
	}
	fmt.Fprintf(stdout, "keys: %d\nmoved: %d (%.2f%%)\nmoved between nodes in both sets: %d (%.2f%%)\n", total, moved, pct(moved), stray, pct(stray))
	return nil
}

// backendsOf returns the hash names of a picker's backends.
func backendsOf(p lb.Picker) []string {
	var bs []*lb.Backend
	switch q := p.(type) {
	case *lb.RingPicker:
		bs = q.Backends()
	case *lb.MaglevPicker:
		bs = q.Backends()
	case *lb.AnchorPicker:
		bs = q.Backends()
	}
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.HashName()
	}
	return names
}
