package lb

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type budgetClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *budgetClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *budgetClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testBudget is a budget and the clock its operations are given.
type testBudget struct {
	*budget
	clk   *budgetClock
	start time.Time
}

func (b testBudget) now() time.Duration { return b.clk.now().Sub(b.start) }

func newTestBudget(t *testing.T, rb RetryBudget) (testBudget, *budgetClock) {
	t.Helper()
	rb, err := rb.withDefaults()
	require.NoError(t, err)
	clk := &budgetClock{t: time.Unix(1000, 0)}
	return testBudget{budget: newBudget(rb), clk: clk, start: clk.now()}, clk
}

// withdrawAll withdraws until refused and returns how many were granted.
func withdrawAll(b testBudget) int {
	n := 0
	for b.withdraw(b.now()) {
		n++
		if n > 1e6 {
			panic("unbounded budget")
		}
	}
	return n
}

func TestRetryBudgetExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rb       RetryBudget
		deposits int
		want     int
	}{
		{"floor only", RetryBudget{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}, 0, 10},
		{"ratio plus floor", RetryBudget{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}, 100, 30},
		{"defaults", RetryBudget{}, 1000, 100 + 200},
		{"ratio 1", RetryBudget{Ratio: 1, MinPerSecond: 1, Window: time.Second}, 50, 51},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _ := newTestBudget(t, tt.rb)
			for i := 0; i < tt.deposits; i++ {
				b.deposit(b.now())
			}
			assert.Equal(t, tt.want, withdrawAll(b))
			b.refund(b.now())
			assert.True(t, b.withdraw(b.now()), "a refunded retry can be taken again")
			assert.False(t, b.withdraw(b.now()))
		})
	}
}

func TestRetryBudgetWindowSlides(t *testing.T) {
	t.Parallel()
	b, clk := newTestBudget(t, RetryBudget{Ratio: 0.5, MinPerSecond: 1, Window: 10 * time.Second})
	for i := 0; i < 100; i++ {
		b.deposit(b.now())
	}
	assert.Equal(t, 10+50, withdrawAll(b))

	clk.add(5 * time.Second)
	for i := 0; i < 40; i++ {
		b.deposit(b.now())
	}
	assert.Equal(t, 20, withdrawAll(b), "40 more requests: 20 more retries")

	// 10.5s after the start, the first second's requests and retries are
	// out of the window; those of second 5 are in.
	clk.add(5*time.Second + 500*time.Millisecond)
	assert.Equal(t, 10+20-20, withdrawAll(b))

	// Long after: only the floor.
	clk.add(time.Minute)
	assert.Equal(t, 10, withdrawAll(b))
}

// Concurrent withdrawals never overspend the budget.
func TestRetryBudgetConcurrent(t *testing.T) {
	t.Parallel()
	b, _ := newTestBudget(t, RetryBudget{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second})
	for i := 0; i < 100; i++ {
		b.deposit(b.now())
	}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if b.withdraw(b.now()) {
					granted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, granted.Load(), int64(30))
	// Refused withdrawals gave back what they took: the rest is there.
	assert.EqualValues(t, 30, granted.Load()+int64(withdrawAll(b)))
}

// A negative Ratio or MinPerSecond turns that part of the budget off: the
// zero value means the default, so "off" needs a value of its own.
func TestRetryBudgetParts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give        RetryBudget
		wantRetries int
	}{
		{RetryBudget{Ratio: -1, MinPerSecond: -1}, 0},   // none at all
		{RetryBudget{Ratio: -1, MinPerSecond: 2}, 20},   // the floor only: 2/s over 10 s
		{RetryBudget{Ratio: 0.5, MinPerSecond: -1}, 50}, // the ratio only: half of 100 requests
		{RetryBudget{}, 120},                            // defaults: 20% of 100, plus 10/s over 10 s
	} {
		rb, err := tt.give.withDefaults()
		require.NoError(t, err)
		b := newBudget(rb)
		for i := 0; i < 100; i++ {
			b.deposit(time.Second)
		}
		n := 0
		for b.withdraw(time.Second) {
			n++
			require.Less(t, n, 10000)
		}
		assert.Equal(t, tt.wantRetries, n, "%+v", tt.give)
	}
}
