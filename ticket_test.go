package lb

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tickets: each claimed word is held by one pick until its first finish,
// a finish counts once, a stale generation never finishes a later claim,
// and the table grows when more picks are in flight than a chunk holds.
func TestTickets(t *testing.T) {
	// More picks in flight than one chunk holds, from several goroutines.
	const perG, goroutines = 3000, 4
	type held struct {
		w *atomic.Uint64
		g uint64
	}
	all := make([][]held, goroutines)
	var wg sync.WaitGroup
	for i := range all {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < perG; j++ {
				w, g := takeTicket()
				all[i] = append(all[i], held{w, g})
			}
		}(i)
	}
	wg.Wait()
	seen := make(map[*atomic.Uint64]bool)
	for _, hs := range all {
		for _, h := range hs {
			require.False(t, seen[h.w], "a word is claimed by two picks at once")
			seen[h.w] = true
			assert.EqualValues(t, h.g|1, h.w.Load(), "claimed: generation plus one")
		}
	}
	assert.GreaterOrEqual(t, ticketChunks.Load(), int32(2), "12,000 picks in flight need more than one chunk of 4,096")
	assert.LessOrEqual(t, ticketChunks.Load(), int32(8), "chunks fill up before the table grows, though each goroutine holds 3,000 picks")

	// Each finishes once; a second finish, a stale one after the word was
	// claimed again, do nothing.
	for _, hs := range all {
		for _, h := range hs {
			require.True(t, finishTicket(h.w, h.g))
			require.False(t, finishTicket(h.w, h.g), "a second finish")
		}
	}
	// A word freed is claimed again by the next pick from the same place
	// (the same goroutine, at the same depth).
	w1, g1 := takeTicket()
	require.True(t, finishTicket(w1, g1))
	w2, g2 := takeTicket()
	if w2 == w1 { // unless another goroutine took it in between
		assert.Equal(t, g1+2, g2, "at the next generation")
	}
	assert.False(t, finishTicket(w1, g1), "a stale pick does not finish the new one")
	assert.EqualValues(t, g2|1, w2.Load(), "still claimed")
	assert.True(t, finishTicket(w2, g2))

	// Racing finishers of one ticket: exactly one wins.
	for r := 0; r < 200; r++ {
		w, g := takeTicket()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if finishTicket(w, g) {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, wins.Load())
	}
}

// Taking and finishing a ticket allocates nothing once the table has room.
func TestTicketsAllocateNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(1000, func() {
		w, g := takeTicket()
		finishTicket(w, g)
	})
	assert.Zero(t, allocs)
}
