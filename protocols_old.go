//go:build !go1.24

package lb

import (
	"fmt"
	"net/http"
)

// setProtocols: net/http before Go 1.24 has no Transport.Protocols.
func setProtocols(_ *http.Transport, p *Protocols) error {
	if *p == (Protocols{}) {
		return nil
	}
	return fmt.Errorf("%w: WithProtocols needs Go 1.24 or later (net/http's Transport.Protocols)", ErrInvalidConfig)
}
