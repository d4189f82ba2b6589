//go:build go1.24

package lb

import "net/http"

// setProtocols configures t for p (the zero p leaves net/http's defaults).
func setProtocols(t *http.Transport, p *Protocols) error {
	if *p == (Protocols{}) {
		return nil
	}
	var ps http.Protocols
	ps.SetHTTP1(p.HTTP1)
	ps.SetHTTP2(p.HTTP2)
	ps.SetUnencryptedHTTP2(p.UnencryptedHTTP2)
	t.Protocols = &ps
	t.HTTP2 = &http.HTTP2Config{
		PingTimeout:                   p.HTTP2PingTimeout,
		SendPingTimeout:               p.HTTP2SendPingTimeout,
		WriteByteTimeout:              p.HTTP2WriteByteTimeout,
		MaxReadFrameSize:              p.HTTP2MaxReadFrameSize,
		MaxReceiveBufferPerConnection: p.HTTP2MaxReceiveBufferPerConnection,
		MaxReceiveBufferPerStream:     p.HTTP2MaxReceiveBufferPerStream,
	}
	return nil
}
