package lb

import (
	"fmt"
	"time"
)

// Protocols says which HTTP versions the Transport's default base speaks
// to backends, and how its HTTP/2 connections behave (WithProtocols). The
// zero value is net/http's default: HTTP/1.1, and HTTP/2 where TLS
// negotiates it.
type Protocols struct {
	// HTTP1 allows HTTP/1.1.
	HTTP1 bool
	// HTTP2 allows HTTP/2 over TLS (negotiated with ALPN).
	HTTP2 bool
	// UnencryptedHTTP2 sends http:// requests as HTTP/2 without TLS (h2c,
	// with prior knowledge: the backends must speak it), as gRPC-style
	// services behind a mesh often do.
	UnencryptedHTTP2 bool

	// HTTP2PingTimeout closes an HTTP/2 connection whose ping is not
	// answered in time; HTTP2SendPingTimeout sends a ping after a
	// connection has been idle that long (0: no health pings);
	// HTTP2WriteByteTimeout closes a connection that cannot write for
	// that long. 0 means net/http's defaults.
	HTTP2PingTimeout, HTTP2SendPingTimeout, HTTP2WriteByteTimeout time.Duration
	// HTTP2MaxReadFrameSize and HTTP2MaxReceiveBufferPerConnection /
	// PerStream size HTTP/2's buffers; 0 means net/http's defaults.
	HTTP2MaxReadFrameSize, HTTP2MaxReceiveBufferPerConnection, HTTP2MaxReceiveBufferPerStream int
}

// WithProtocols sets the protocols of the default base (it cannot be
// combined with WithBase, which brings its own). It needs Go 1.24 or
// later (net/http's Transport.Protocols); with an older Go, NewTransport
// returns an error for anything but the zero Protocols.
func WithProtocols(p Protocols) TransportOption {
	return transportOptionFunc(func(o *transportOptions) {
		if err := p.validate(); err != nil {
			o.errs = append(o.errs, err)
		}
		o.protocols, o.protocolsSet = p, true
	})
}

func (p Protocols) validate() error {
	if !p.HTTP1 && !p.HTTP2 && !p.UnencryptedHTTP2 && p != (Protocols{}) {
		return fmt.Errorf("%w: WithProtocols: HTTP1, HTTP2 and UnencryptedHTTP2 are all false; allow at least one", ErrInvalidConfig)
	}
	for name, d := range map[string]time.Duration{"HTTP2PingTimeout": p.HTTP2PingTimeout, "HTTP2SendPingTimeout": p.HTTP2SendPingTimeout, "HTTP2WriteByteTimeout": p.HTTP2WriteByteTimeout} {
		if d < 0 {
			return fmt.Errorf("%w: Protocols.%s is %v; it must be >= 0", ErrInvalidConfig, name, d)
		}
	}
	for name, n := range map[string]int{"HTTP2MaxReadFrameSize": p.HTTP2MaxReadFrameSize, "HTTP2MaxReceiveBufferPerConnection": p.HTTP2MaxReceiveBufferPerConnection, "HTTP2MaxReceiveBufferPerStream": p.HTTP2MaxReceiveBufferPerStream} {
		if n < 0 || n > 1<<30 {
			return fmt.Errorf("%w: Protocols.%s is %d; it must be 0 (default) to 2^30", ErrInvalidConfig, name, n)
		}
	}
	return nil
}

// nextProtos is the ALPN list of the default base's TLS handshakes.
func (p *Protocols) nextProtos() []string {
	if *p == (Protocols{}) || p.HTTP2 && p.HTTP1 {
		return []string{"h2", "http/1.1"}
	}
	if p.HTTP2 {
		return []string{"h2"}
	}
	return []string{"http/1.1"}
}
