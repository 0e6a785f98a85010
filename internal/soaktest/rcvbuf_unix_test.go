//go:build unix

package soaktest

import (
	"net"
	"syscall"
)

// smallWindowDialer dials with a receive buffer of about size bytes,
// fixed before the handshake so that TCP advertises a small window: a
// peer that stops reading then blocks its sender after a few KB instead
// of the megabytes loopback autotuning allows, as a phone on bad Wi-Fi
// does.
func smallWindowDialer(size int) *net.Dialer {
	return &net.Dialer{
		Timeout: wait,
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			}); cerr != nil {
				return cerr
			}
			return err
		},
	}
}
