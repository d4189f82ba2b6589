// Command benchmd runs the benchmarks module's speed benchmarks (lb and
// its peers, in -count interleaved passes, reported as medians) and its
// quality report (balance, key
// movement, weighted shares over 1,000,000 keys), and writes the results
// as BENCHMARKS.md. Run it from the benchmarks directory (make bench does):
//
//	go run ./cmd/benchmd -count 5 -benchtime 200ms -out ../BENCHMARKS.md
//
// -from reuses a saved `go test -bench` output instead of running the
// benchmarks (to rework the report without measuring again).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	bm "github.com/go-lb/lb/benchmarks"
)

func main() {
	var cfg Config
	flag.IntVar(&cfg.Count, "count", 5, "runs per benchmark, as interleaved passes over all benchmarks (the report shows medians)")
	flag.StringVar(&cfg.Benchtime, "benchtime", "200ms", "-test.benchtime per run of a picker benchmark")
	flag.StringVar(&cfg.HTTPTime, "httptime", "1s", "-test.benchtime per run of an HTTP benchmark (noisier: loopback TCP)")
	flag.StringVar(&cfg.Bench, "bench", "^Benchmark[^H]", "-test.bench pattern of the picker benchmarks (\"\": none); the default is all but BenchmarkHTTP")
	flag.StringVar(&cfg.HTTPBench, "httpbench", "^BenchmarkHTTP(Paired)?$", "-test.bench pattern of the HTTP benchmarks (\"\": none)")
	flag.IntVar(&cfg.Keys, "keys", bm.QualityKeys, "keys of the quality report")
	flag.StringVar(&cfg.Out, "out", "../BENCHMARKS.md", "the report to write")
	flag.StringVar(&cfg.Raw, "raw", "results/bench.txt", "where to save the raw go test output (benchstat reads it)")
	flag.StringVar(&cfg.From, "from", "", "parse this saved go test output instead of running the benchmarks")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "benchmd:", err)
		os.Exit(1)
	}
}

// Config is the generator's settings.
type Config struct {
	Count     int
	Benchtime string
	Bench     string
	HTTPTime  string
	HTTPBench string
	Keys      int
	Out       string
	Raw       string
	From      string
}

// Env describes where and how the figures were measured.
type Env struct {
	Date      time.Time
	GoVersion string
	OSArch    string
	CPU       string
	NumCPU    int
	Procs     string // GOMAXPROCS, from the benchmark names
	LbCommit  string
	GenCmd    string // the generator's command line
	BenchCmd  string // the go test command line
	Versions  map[string]string
	Took      time.Duration
}

func run(cfg Config) error {
	start := time.Now()
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the benchmarks directory: %v", err)
	}
	// The benchmarks run as cfg.Count interleaved passes of one test binary
	// (each pass runs every benchmark once), so that a burst of load from
	// elsewhere on the machine spreads over all rows instead of landing on
	// the -count consecutive runs of one row.
	var invocations [][]string
	for _, b := range []struct{ re, t string }{{cfg.Bench, cfg.Benchtime}, {cfg.HTTPBench, cfg.HTTPTime}} {
		if b.re != "" {
			invocations = append(invocations, []string{"-test.run", "^$", "-test.bench", b.re, "-test.benchmem",
				"-test.benchtime", b.t, "-test.timeout", "60m"})
		}
	}
	var shown []string
	for _, args := range invocations {
		shown = append(shown, "./benchmarks.test "+shellJoin(args))
	}
	env := Env{
		Date:      time.Now().UTC(),
		GoVersion: goVersion(),
		NumCPU:    runtime.NumCPU(),
		LbCommit:  gitCommit(),
		GenCmd:    "cd benchmarks && go run ./cmd/benchmd " + strings.Join(os.Args[1:], " "),
		BenchCmd: fmt.Sprintf("go test -c -o benchmarks.test . && %d passes of: %s",
			cfg.Count, strings.Join(shown, " && ")),
		Versions: moduleVersions(),
	}
	var raw []byte
	if cfg.From != "" {
		b, err := os.ReadFile(cfg.From)
		if err != nil {
			return err
		}
		raw = b
		if fi, err := os.Stat(cfg.From); err == nil {
			env.Date = fi.ModTime().UTC()
		}
	} else {
		fmt.Fprintf(os.Stderr, "benchmd: %s\n", env.BenchCmd)
		dir, err := os.MkdirTemp("", "benchmd")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "benchmarks.test")
		build := exec.Command("go", "test", "-c", "-o", bin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go test -c: %v", err)
		}
		var buf bytes.Buffer
		for pass := 1; pass <= cfg.Count; pass++ {
			fmt.Fprintf(os.Stderr, "benchmd: pass %d of %d\n", pass, cfg.Count)
			for _, args := range invocations {
				cmd := exec.Command(bin, args...)
				cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
				cmd.Stderr = os.Stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("benchmarks, pass %d: %v", pass, err)
				}
			}
		}
		raw = buf.Bytes()
		if cfg.Raw != "" {
			if err := os.MkdirAll(filepath.Dir(cfg.Raw), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(cfg.Raw, raw, 0o644); err != nil {
				return err
			}
		}
	}
	res, err := Parse(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if len(res.Results) == 0 {
		return fmt.Errorf("no benchmark results")
	}
	env.CPU = res.Header["cpu"]
	env.OSArch = res.Header["goos"] + "/" + res.Header["goarch"]
	env.Procs = procs(raw)

	fmt.Fprintf(os.Stderr, "benchmd: quality report over %s\n", keysDesc(cfg.Keys))
	q := MeasureQuality(cfg.Keys, func(msg string) { fmt.Fprintln(os.Stderr, "benchmd:", msg) })
	env.Took = time.Since(start)

	var out bytes.Buffer
	Write(&out, cfg, env, res, q)
	if err := os.WriteFile(cfg.Out, out.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchmd: wrote %s in %s\n", cfg.Out, env.Took.Round(time.Second))
	return nil
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// moduleVersions returns the version of every module the generator (and
// so the benchmarks package) was built with.
func moduleVersions() map[string]string {
	v := map[string]string{"std": runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, d := range bi.Deps {
		if d.Replace != nil && (d.Replace.Version == "" || d.Replace.Version == "(devel)") {
			v[d.Path] = "this repository"
			continue
		}
		v[d.Path] = d.Version
	}
	return v
}

// procs returns the -N suffix of the benchmark names: GOMAXPROCS.
func procs(raw []byte) string {
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		name := strings.Fields(line)[0]
		if m := procsSuffix.FindString(name); m != "" {
			return m[1:]
		}
		return "1"
	}
	return "?"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$*?[]() ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
