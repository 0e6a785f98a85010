package lampsim

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/testwait"
)

// A peer that sends commands but never reads their reports fills its
// queue and is dropped; the lamp is never blocked by it. net.Pipe has no
// buffer, so the writer is stuck on the first report from the start.
func TestSlowPeerDropped(t *testing.T) {
	opts := Options{Interval: time.Hour, Logger: zerolog.Nop()}
	if err := opts.ensureDefaults(); err != nil {
		t.Fatal(err)
	}
	l := newLamp(&opts, 1)
	lampEnd, peerEnd := net.Pipe()
	defer peerEnd.Close()
	done := make(chan error, 1)
	go func() { done <- l.serve(context.Background(), lampEnd, false) }()

	// One report is in the writer and queueLen wait; the next command
	// overflows the queue. Writes to the pipe fail once the lamp drops us.
	peerEnd.SetWriteDeadline(time.Now().Add(testwait.Timeout))
	var err error
	for i := 0; i < 2*queueLen && err == nil; i++ {
		_, err = peerEnd.Write([]byte("power=on\n"))
	}
	if err == nil {
		t.Fatal("the lamp still reads from a peer that does not read")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlowPeer) {
			t.Fatalf("serve: got %v, want ErrSlowPeer", err)
		}
	case <-time.After(testwait.Timeout):
		t.Fatal("serve did not return")
	}
	// The lamp itself is free: a tick reports to nobody without blocking.
	l.mu.Lock()
	n := len(l.conns)
	l.reportLocked(opts.Now(), reasonHeartbeat)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("peers after the drop: got %d, want 0", n)
	}
}
