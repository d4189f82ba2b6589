package lb

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Finishing a pick is idempotent without an allocation through a ticket:
// one word of a table shared by every Balancer. A pick claims a free word
// and notes its value; the first Done or Cancel swaps that value for the
// next generation, which frees the word, and a later finish (of the pick
// or of any copy of it) no longer matches, however often the word has been
// claimed since. Claiming and finishing are one compare-and-swap each: a
// sync.Pool of tokens costs several times that (its Get and Put are about
// 14 ns on this project's 2-core machine, a compare-and-swap 3 ns).
//
// A word holds its generation times two, plus one while claimed. A
// goroutine's first choice is the word its stack address hashes to, 16
// words (128 bytes) from its neighbours', so concurrent callers rarely
// share a cache line and a caller in a loop reuses its own word; when
// those are claimed, it tries random places. The table grows by chunks
// when a caller finds no free word in any chunk (more picks in flight
// than the chunks hold); chunks are never freed.

const (
	ticketSlots  = 4096 // words a chunk (32 KiB)
	ticketSpread = 16   // words between two goroutines' first choices
	ticketProbes = 8    // consecutive words tried from a start
	// ticketRetries is how many random starts a chunk is probed at when
	// the caller's own start is full: in a chunk half claimed, a caller
	// moves on to the next chunk with a chance of about 2^-64 (every one
	// of 64 random words claimed).
	ticketRetries = 8
	// maxTicketChunks bounds the table (1,024 chunks: 32 MiB, 4M picks in
	// flight); past it a ticket is allocated.
	maxTicketChunks = 1024
)

type ticketChunk struct {
	words [ticketSlots]atomic.Uint64
	next  atomic.Pointer[ticketChunk]
}

var (
	tickets      ticketChunk // the first chunk
	ticketGrow   sync.Mutex  // held to add a chunk
	ticketChunks atomic.Int32
)

// takeTicket claims a free word and returns it and its value before the
// claim (the pick's generation).
func takeTicket() (*atomic.Uint64, uint64) {
	var mark byte
	// Goroutine stacks are at least 2 KiB apart: bits 11 and up tell
	// goroutines apart.
	start := (uintptr(unsafe.Pointer(&mark)) >> 11) * ticketSpread
	for c := &tickets; c != nil; c = c.next.Load() {
		if w, g, ok := c.claim(start); ok {
			return w, g
		}
	}
	return growTickets(start)
}

// claim tries the probe words from start on, then from a few random
// places, so that a chunk fills up before the table grows even when one
// goroutine holds many picks at once (its start is always the same).
func (c *ticketChunk) claim(start uintptr) (*atomic.Uint64, uint64, bool) {
	if w, g, ok := c.probe(start); ok {
		return w, g, true
	}
	for i := 0; i < ticketRetries; i++ {
		if w, g, ok := c.probe(uintptr(rand.Uint64())); ok {
			return w, g, true
		}
	}
	return nil, 0, false
}

// probe tries the ticketProbes words from start on.
func (c *ticketChunk) probe(start uintptr) (*atomic.Uint64, uint64, bool) {
	for i := uintptr(0); i < ticketProbes; i++ {
		w := &c.words[(start+i)&(ticketSlots-1)]
		if g := w.Load(); g&1 == 0 && w.CompareAndSwap(g, g|1) {
			return w, g, true
		}
	}
	return nil, 0, false
}

// growTickets adds a chunk and claims a word of it; past maxTicketChunks
// it allocates a word of its own.
func growTickets(start uintptr) (*atomic.Uint64, uint64) {
	ticketGrow.Lock()
	defer ticketGrow.Unlock()
	last := &tickets
	for n := last.next.Load(); n != nil; n = last.next.Load() {
		last = n
	}
	// Another caller may have added the chunk that is free here.
	if w, g, ok := last.claim(start); ok {
		return w, g
	}
	if ticketChunks.Load() >= maxTicketChunks {
		w := new(atomic.Uint64)
		w.Store(1)
		return w, 0
	}
	c := new(ticketChunk)
	w := &c.words[start&(ticketSlots-1)]
	w.Store(1)
	last.next.Store(c)
	ticketChunks.Add(1)
	return w, 0
}

// finishTicket reports whether this is the first finish of the pick that
// claimed w at generation g, and frees w if so.
func finishTicket(w *atomic.Uint64, g uint64) bool {
	return w.CompareAndSwap(g|1, g+2)
}
