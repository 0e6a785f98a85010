//go:build !unix

package soaktest

import "net"

// smallWindowDialer is a plain dialer where the receive buffer cannot be
// set; the stuck client then takes longer to fill.
func smallWindowDialer(int) *net.Dialer { return &net.Dialer{Timeout: wait} }
