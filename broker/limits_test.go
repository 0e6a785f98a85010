package broker

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestMaxPacketSize checks that a client sending a packet over the limit
// is disconnected before the broker allocates it, and that the limit is on
// by default: mochi's own default is none.
func TestMaxPacketSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		size  int // remaining length declared by the oversized PUBLISH
	}{
		{"configured", 1024, 2000},
		{"default", 0, DefaultMaxPacketSize + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", MaxPacketSize: tc.limit})
			c := rawConnect(t, b.MQTTAddr().String(), "big")
			// A PUBLISH header declaring tc.size bytes; the body never
			// needs to be sent.
			hdr := []byte{0x30}
			for n := tc.size; ; {
				d := byte(n % 128)
				n /= 128
				if n > 0 {
					d |= 0x80
				}
				hdr = append(hdr, d)
				if n == 0 {
					break
				}
			}
			if _, err := c.Write(hdr); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			_, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still connected after declaring a %d-byte packet", tc.size)
			}
			// Others are unaffected.
			ok := rawConnect(t, b.MQTTAddr().String(), "small")
			writeRaw(t, ok, 0x82, 1, append(filterBytes("x"), 0)...)
			if p := readRaw(t, ok); p.kind() != 9 {
				t.Errorf("another client's SUBSCRIBE: got packet type %d, want SUBACK", p.kind())
			}
		})
	}
}
