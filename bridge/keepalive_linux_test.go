package bridge_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/lampgw/lampgw/bridge"
)

// sockopt reads an integer socket option of conn.
func sockopt(t *testing.T, conn *net.TCPConn, level, opt int) int {
	t.Helper()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestKeepAliveOnLampSockets checks that ServeConn turns on TCP keepalive
// with the configured idle time, whatever listener the socket came from:
// a lamp that lost power sends no FIN, and only probes find it.
func TestKeepAliveOnLampSockets(t *testing.T) {
	e := newEnv(t, bridge.Options{KeepAlive: 42 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := server.(*net.TCPConn)
	// Go enables keepalive on accepted sockets by default (15 s); turn it
	// off so that only ServeConn can turn it back on.
	tc.SetKeepAlive(false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.ServeConn(context.Background(), server)
	}()
	client.Write([]byte("HELLO ka\n"))
	e.expect(t, online("ka"))
	if got := sockopt(t, tc, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); got != 1 {
		t.Errorf("SO_KEEPALIVE: got %d, want 1", got)
	}
	if got := sockopt(t, tc, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); got != 42 {
		t.Errorf("TCP_KEEPIDLE: got %d s, want 42", got)
	}
	if got := sockopt(t, tc, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL); got != 14 {
		t.Errorf("TCP_KEEPINTVL: got %d s, want 14", got)
	}
	client.Close()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("ServeConn did not return after the lamp hung up")
	}
}
