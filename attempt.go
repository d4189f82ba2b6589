package lb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// bufferBody reads a failure response's body into memory, so that the
// connection is released during the retry and the response can still be
// returned if the retries fail. It reports false, leaving the body
// readable from the start, if the body is too large or could not be read.
func bufferBody(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody {
		return true
	}
	if resp.ContentLength > maxBufferedFailure {
		return false
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedFailure+1))
	if err != nil || len(buf) > maxBufferedFailure {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return false
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	return true
}

type readCloser struct {
	io.Reader
	io.Closer
}

// attempt is one try of a request on one backend and, once there is a
// response, the body wrapper that finishes the pick.
type attempt struct {
	req  *http.Request // the caller's
	pick Pick
	lat  time.Duration // time to the response headers
	body io.ReadCloser // the base's response body
	fail error         // what Done gets on a clean end: nil or errFailureStatus
	eof  bool          // the body was read to its end
	done atomic.Bool

	// With a per-try or body idle timeout (or hedging), the attempt has a
	// context of its own, cancelled by release.
	cancel context.CancelCauseFunc
	// idle is the body idle timeout (0: none); clock reads the
	// Transport's monotonic clock; reading is when the Read in progress
	// began on it (0: none), and stalled that the watchdog ended it.
	idle     time.Duration
	clock    func() time.Duration
	reading  atomic.Int64
	stalled  atomic.Bool
	stalls   *atomic.Uint64 // the Transport's count of stalled bodies
	watchdog *time.Timer
}

// release ends the attempt's own context, if it has one, and its
// watchdog.
func (a *attempt) release() {
	if a.watchdog != nil {
		a.watchdog.Stop()
	}
	if a.cancel != nil {
		a.cancel(context.Canceled)
	}
}

// rewrittenAttempt is an attempt and the copy of its request whose URL
// names the backend's address, in one allocation.
type rewrittenAttempt struct {
	attempt
	req http.Request
	url url.URL
}

// rewrite returns an attempt with a copy of req that has body as its body
// and addr as its URL's host; the Host header keeps the request's logical
// host.
func rewrite(req *http.Request, addr string, body io.ReadCloser) (*attempt, *http.Request) {
	c := &rewrittenAttempt{req: *req, url: *req.URL}
	c.url.Host = addr
	c.req.URL = &c.url
	if c.req.Host == "" {
		c.req.Host = req.URL.Host
	}
	c.req.Body = body
	return &c.attempt, &c.req
}

// withBody returns req if body is its body, else a copy of req with body.
func withBody(req *http.Request, body io.ReadCloser) *http.Request {
	if body == req.Body {
		return req
	}
	c := new(http.Request)
	*c = *req
	c.Body = body
	return c
}

// wrap makes resp's body finish the pick when it ends; fail is what the
// pick's Done gets then.
func (a *attempt) wrap(resp *http.Response, fail error) *http.Response {
	a.fail = fail
	if resp.Body == nil || resp.Body == http.NoBody {
		a.eof = true
		a.finish(fail)
		return resp
	}
	a.body = resp.Body
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		a.idle = 0 // the connection is the caller's now
		resp.Body = upgradedBody{a, rw}
		return resp
	}
	if a.idle > 0 {
		a.watchdog = time.AfterFunc(a.idle, a.watch)
	}
	resp.Body = a
	return resp
}

// watch ends a Read that has waited for the body longer than the idle
// timeout, by cancelling the attempt's context, and looks again later.
func (a *attempt) watch() {
	next := a.idle
	if since := a.reading.Load(); since != 0 {
		waited := a.clock() - time.Duration(since)
		if waited >= a.idle {
			a.stalled.Store(true)
			a.stalls.Add(1)
			a.cancel(ErrBodyStalled)
			return
		}
		next = a.idle - waited
	}
	a.watchdog.Reset(next)
}

// Read reads the response body; its end (EOF or an error) finishes the
// pick.
func (a *attempt) Read(p []byte) (int, error) {
	if a.idle > 0 {
		a.reading.Store(int64(max(a.clock(), 1)))
	}
	n, err := a.body.Read(p)
	if a.idle > 0 {
		a.reading.Store(0)
		if err != nil && a.stalled.Load() {
			err = fmt.Errorf("%w: no bytes for %v (%w)", ErrBodyStalled, a.idle, err)
		}
	}
	if err != nil {
		if err == io.EOF {
			a.eof = true
			a.finish(a.fail)
		} else {
			a.finish(err)
		}
	}
	return n, err
}

// Close closes the response body and finishes the pick.
func (a *attempt) Close() error {
	err := a.body.Close()
	a.finish(a.fail)
	return err
}

// The caller's context may end while the body is read: a body that then
// ends with an error, or that the caller closes before its end, was cut
// short by the caller. That is neither the backend's failure nor a success
// (Cancel), unless the response was a failure already (its status).

// finish ends the pick once, with err: nil for a body read to its end or
// closed by the caller, the body's error, or a.fail. A stalled body is the
// backend's failure, whatever the caller's context says.
func (a *attempt) finish(err error) {
	if !a.done.CompareAndSwap(false, true) {
		return
	}
	defer a.release()
	if a.stalled.Load() {
		a.pick.Done(ErrBodyStalled, a.lat)
		return
	}
	if a.fail == nil && !a.eof && callerDone(a.req) {
		a.pick.Cancel()
		return
	}
	a.pick.Done(err, a.lat)
}

// upgradedBody is the body of a 101 Switching Protocols response: the
// connection itself, writable. The pick ends when it is closed.
type upgradedBody struct {
	*attempt
	rw io.ReadWriteCloser
}

func (u upgradedBody) Write(p []byte) (int, error) { return u.rw.Write(p) }

// sentBodies tracks the body of a request that has no GetBody, across
// attempts. Such a body can be sent again only if no attempt read from it
// (the request never reached a backend, or the backend answered before
// reading it), so each attempt gets a sentBody that records whether it was
// read, and that keeps the body open when the base transport closes it
// unread. The body is closed once: when the base closes it after reading
// it, or when the attempts settle.
type sentBodies struct {
	cur *sentBody // the current attempt's
}

func newSentBodies(rc io.ReadCloser, contentLength int64) *sentBodies {
	src := &bodySource{rc: rc}
	src.want = contentLength
	return &sentBodies{cur: &sentBody{src: src}}
}

// bodySource is the caller's request body, closed once.
type bodySource struct {
	bodyCheck
	rc   io.ReadCloser
	once sync.Once
}

func (s *bodySource) close() { s.once.Do(func() { s.rc.Close() }) }

// bodyCheck watches a request body as net/http reads it, for failures of
// the caller's side: a read error of the body itself, or a length other
// than the request's ContentLength (net/http then refuses to go on). Such a
// failure is the caller's, not the backend's. net/http may read the body
// on a goroutine of its own, after RoundTrip returned: the fields are
// atomic.
type bodyCheck struct {
	want int64 // ContentLength: > 0 when known
	n    atomic.Int64
	bad  atomic.Pointer[error]
}

// errBodyLength is the cause of a body failure for a length other than
// ContentLength.
var errBodyLength = errors.New("body length differs from ContentLength")

// observe records one Read of the body.
func (c *bodyCheck) observe(n int, err error) {
	total := c.n.Add(int64(n))
	switch {
	case err != nil && err != io.EOF:
		c.fail(err)
	case c.want > 0 && (total > c.want || err == io.EOF && total != c.want):
		c.fail(fmt.Errorf("%w: ContentLength is %d, the body has %d or more bytes", errBodyLength, c.want, total))
	}
}

func (c *bodyCheck) fail(err error) { c.bad.CompareAndSwap(nil, &err) }

// failure returns the body's failure, or nil.
func (c *bodyCheck) failure() error {
	if p := c.bad.Load(); p != nil {
		return *p
	}
	return nil
}

// checkedBody is a replayable request body (the caller's, or one GetBody
// made) as one attempt sends it.
type checkedBody struct {
	bodyCheck
	rc io.ReadCloser
}

func newCheckedBody(rc io.ReadCloser, contentLength int64) *checkedBody {
	b := &checkedBody{rc: rc}
	b.want = contentLength
	return b
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.observe(n, err)
	return n, err
}

func (b *checkedBody) Close() error { return b.rc.Close() }

// The states of a sentBody.
const (
	bodyFresh        int32 = iota // neither read nor closed
	bodyRead                      // read from: cannot be sent again; Close closes the source
	bodyClosedUnread              // closed by the base without a read: the source is kept open
	bodyDetached                  // taken back for another attempt: reads fail, Close does nothing
	bodySettled                   // no more attempts: Close closes the source
)

var errBodyDetached = errors.New("lb: request body taken back for another attempt")

// sentBody is one attempt's view of a request body that has no GetBody.
type sentBody struct {
	src   *bodySource
	state atomic.Int32
}

// Read reads the body and marks it read.
func (b *sentBody) Read(p []byte) (int, error) {
	for {
		switch s := b.state.Load(); s {
		case bodyFresh:
			if !b.state.CompareAndSwap(bodyFresh, bodyRead) {
				continue
			}
		case bodyDetached:
			return 0, errBodyDetached
		case bodyClosedUnread:
			return 0, http.ErrBodyReadAfterClose
		}
		n, err := b.src.rc.Read(p)
		b.src.observe(n, err)
		return n, err
	}
}

// Close closes the body, unless it is unread and may be sent again.
func (b *sentBody) Close() error {
	for {
		switch s := b.state.Load(); s {
		case bodyFresh:
			if b.state.CompareAndSwap(bodyFresh, bodyClosedUnread) {
				return nil
			}
		case bodyRead, bodySettled:
			b.src.close()
			return nil
		default:
			return nil
		}
	}
}

// unread reports whether no attempt read from the body so far.
func (b *sentBody) unread() bool {
	s := b.state.Load()
	return s == bodyFresh || s == bodyClosedUnread
}

// detach takes the body back from the attempt, if it was not read, for the
// next attempt (again) or to be closed (settle).
func (b *sentBody) detach() bool {
	for {
		switch s := b.state.Load(); s {
		case bodyFresh, bodyClosedUnread:
			if b.state.CompareAndSwap(s, bodyDetached) {
				return true
			}
		default:
			return false
		}
	}
}

// again returns the next attempt's view of the body; b must be detached.
func (b *sentBody) again() *sentBody { return &sentBody{src: b.src} }

// settle ends the tracking: the body is closed now if it was closed
// unread or taken back, and otherwise when the base closes it.
func (b *sentBody) settle() {
	for {
		switch s := b.state.Load(); s {
		case bodyFresh:
			if b.state.CompareAndSwap(bodyFresh, bodySettled) {
				return
			}
		case bodyClosedUnread, bodyDetached:
			if b.state.CompareAndSwap(s, bodySettled) {
				b.src.close()
				return
			}
		default:
			return
		}
	}
}
