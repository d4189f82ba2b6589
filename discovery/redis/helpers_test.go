package redis_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/go-lb/lb"
	lbredis "github.com/go-lb/lb/discovery/redis"
)

// recorder runs a resolver's Watch in the background and keeps every set
// it reports.
type recorder struct {
	mu   sync.Mutex
	sets [][]lb.Endpoint
	stop func() error
	// ended waits for Watch to return by itself.
	ended func(t *testing.T) error
}

func watch(t *testing.T, r lbredis.Resolver) *recorder {
	t.Helper()
	done := make(chan error, 1)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- r.Watch(ctx, func(eps []lb.Endpoint) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.sets = append(rec.sets, eps)
			return nil
		})
	}()
	var once sync.Once
	var err error
	rec.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	rec.ended = func(t *testing.T) error {
		t.Helper()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Watch did not return by itself")
		}
		once.Do(cancel)
		return err
	}
	t.Cleanup(func() { _ = rec.stop() })
	return rec
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sets)
}

func (r *recorder) last() []lb.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil
	}
	return r.sets[len(r.sets)-1]
}

// noRepeats checks that no set was reported twice in a row.
func (r *recorder) noRepeats(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.sets); i++ {
		assert.False(t, lb.EqualEndpoints(r.sets[i-1], r.sets[i]), "set %d repeats set %d: %v", i, i-1, r.sets[i])
	}
}

func (r *recorder) addrs() string { return addrs(r.last()) }

func addrs(eps []lb.Endpoint) string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.Addr
	}
	return "[" + strings.Join(s, " ") + "]"
}

// waitAddrs waits until the last set reported has these addresses.
func (r *recorder) waitAddrs(t *testing.T, want ...string) {
	t.Helper()
	w := "[" + strings.Join(want, " ") + "]"
	waitFor(t, "set "+w, func() bool { return r.count() > 0 && r.addrs() == w })
}

func backends(bal *lb.Balancer) string {
	s := make([]string, 0, len(bal.Backends()))
	for _, b := range bal.Backends() {
		s = append(s, b.Addr())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// logRecorder is a slog.Handler that keeps messages with their
// attributes.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func newLogs() (*logRecorder, *slog.Logger) {
	l := &logRecorder{}
	return l, slog.New(l)
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := r.Time.Format("15:04:05.000 ") + r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	l.msgs = append(l.msgs, msg)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}
