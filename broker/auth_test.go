package broker

import (
	"bytes"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// remoteConn is one end of a net.Pipe that claims to come from remote, so
// that a test can play a client on another host without leaving loopback.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// connectFrom runs mochi's real connection path for a client at remote
// and returns the CONNACK return code it answers a CONNECT of version v.
func connectFrom(t *testing.T, b *Broker, remote string, v byte) byte {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	go b.srv.EstablishConnection("mqtt", remoteConn{server, addr})
	name := "MQTT"
	if v == 3 {
		name = "MQIsdp"
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: v,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte(name),
			Clean:            true,
			Keepalive:        30,
			ClientIdentifier: "far-" + remote,
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	p := readRaw(t, client)
	if p.kind() != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", p.kind())
	}
	return p.body[1]
}

func TestAnonymousOnlyFromLoopback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  bool
		remote string
		v      byte
		want   byte
	}{
		{"v5 from the LAN", false, "192.0.2.7:50000", 5, packets.ErrNotAuthorized.Code},
		{"v3.1.1 from the LAN", false, "192.0.2.7:50000", 4, 5}, // 5: not authorized
		{"v3.1 from the LAN", false, "[2001:db8::7]:50000", 3, 5},
		{"v5 from 127.0.0.1", false, "127.0.0.1:50000", 5, 0},
		{"v3.1.1 from ::1", false, "[::1]:50000", 4, 0},
		{"v3.1.1 from mapped loopback", false, "[::ffff:127.0.0.1]:50000", 4, 0},
		{"v5 from the LAN, allowed", true, "192.0.2.7:50000", 5, 0},
		{"v3.1.1 from the LAN, allowed", true, "192.0.2.7:50000", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Options{AllowAnonymous: tc.allow})
			if got := connectFrom(t, b, tc.remote, tc.v); got != tc.want {
				t.Errorf("CONNACK code: got %#x, want %#x", got, tc.want)
			}
		})
	}
}
