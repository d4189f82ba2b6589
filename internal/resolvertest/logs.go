package resolvertest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Logs is a slog.Handler that keeps every record as its message followed
// by its attributes (" key=value" each), so that a test can count or wait
// for what a resolver said. The zero value keeps records of every level;
// its methods are safe for concurrent use.
type Logs struct {
	// MinLevel, when set, drops records below it (a client library's
	// Debug messages, say).
	MinLevel slog.Leveler

	mu   sync.Mutex
	msgs []string
}

// NewLogs returns a Logs of every level and a Logger writing to it.
func NewLogs() (*Logs, *slog.Logger) {
	l := &Logs{}
	return l, slog.New(l)
}

// Enabled implements slog.Handler.
func (l *Logs) Enabled(_ context.Context, lv slog.Level) bool {
	return l.MinLevel == nil || lv >= l.MinLevel.Level()
}

// Handle implements slog.Handler.
func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler; the attributes are not kept.
func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup implements slog.Handler; the group is not kept.
func (l *Logs) WithGroup(string) slog.Handler { return l }

// Matching returns the messages that contain substr, oldest first.
func (l *Logs) Matching(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			out = append(out, m)
		}
	}
	return out
}

// Count is how many messages contain substr.
func (l *Logs) Count(substr string) int { return len(l.Matching(substr)) }
