package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/testwait"
)

// The hostile-client suite: each attack runs against a gateway that also
// serves a legitimate lamp and app, which must keep working, and after it
// nothing may have been published for the attacker.
//
// Attackers connect from 127.0.0.1 and the legitimate lamp from
// 127.0.0.2: Linux routes all of 127/8 to the loopback interface, so the
// two are different addresses to the gateway's per-address limits
// without leaving loopback.

// dialFrom connects to addr from the local IP from.
func dialFrom(t *testing.T, from string, addr net.Addr) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr.String())
}

// bystanders are a legitimate lamp and app.
type bystanders struct {
	t    *testing.T
	app  *app
	lamp *lamp
	n    int
}

func newBystanders(t *testing.T, addrs gateway.Addrs) *bystanders {
	t.Helper()
	conn, err := dialFrom(t, "127.0.0.2", addrs.Bridge)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	b := &bystanders{t: t, app: newApp(t, addrs.MQTT, "lamp/#"), lamp: &lamp{t: t, conn: conn, r: bufio.NewReader(conn)}}
	b.lamp.send("HELLO good s3cret-token\n")
	b.app.expectEventually("lamp/good/availability", "online")
	b.check()
	return b
}

// check proves the lamp and the app still work both ways, and that
// nothing but the good lamp's topics was published meanwhile.
func (b *bystanders) check() {
	b.t.Helper()
	b.n++
	b.lamp.send(fmt.Sprintf("brightness=%d\n", b.n))
	before := b.app.expectPayload("lamp/good/brightness", fmt.Sprint(b.n))
	for _, m := range before {
		if !strings.HasPrefix(m.topic, "lamp/good/") {
			b.t.Errorf("published for an attacker: %s %q", m.topic, m.payload)
		}
	}
	b.app.publish("lamp/good/brightness/set", fmt.Sprint(1000-b.n), false)
	b.lamp.expectLine(fmt.Sprintf("brightness=%d", 1000-b.n))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// attacker is a raw connection from 127.0.0.1.
func attacker(t *testing.T, addrs gateway.Addrs) *lamp {
	t.Helper()
	conn, err := dialFrom(t, "127.0.0.1", addrs.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lamp{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func TestHostileLamps(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "devices:\n  - {id: good, token: s3cret-token}\n", func(o *gateway.Options) {
		o.LampHandshakeTimeout = 300 * time.Millisecond
	})
	b := newBystanders(t, addrs)

	t.Run("slowloris", func(t *testing.T) {
		// One byte at a time, never a whole line: the handshake deadline
		// closes it however slowly it trickles.
		l := attacker(t, addrs)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(wait)
		for i := 0; ; i++ {
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatalf("still open after %v of trickling", wait)
			}
			l.conn.SetWriteDeadline(time.Now().Add(wait))
			if _, err := l.conn.Write([]byte{"HELLO slow"[i%10]}); err != nil {
				break // closed by the gateway
			}
		}
		b.check()
	})

	t.Run("10 MB line", func(t *testing.T) {
		before := heapInUse()
		l := attacker(t, addrs)
		l.send("HELLO big\n")
		chunk := []byte(strings.Repeat("x", 64<<10))
		go func() {
			for range (10 << 20) / len(chunk) {
				l.conn.SetWriteDeadline(time.Now().Add(wait))
				if _, err := l.conn.Write(chunk); err != nil {
					return
				}
			}
			l.conn.Write([]byte("\nbrightness=5\n"))
		}()
		l.expectLine("ERR frame too long (max 1024 bytes)")
		// The rest of the line was thrown away and the connection works.
		b.app.expectPayload("lamp/big/availability", "online")
		b.app.expectPayload("lamp/big/brightness", "5")
		if grew := int64(heapInUse()) - int64(before); grew > 4<<20 {
			t.Errorf("heap grew by %d bytes over a 10 MB line, want it bounded by the frame size", grew)
		}
		l.conn.Close()
		b.app.expectPayload("lamp/big/availability", "offline")
		b.check()
	})

	t.Run("garbage bytes", func(t *testing.T) {
		l := attacker(t, addrs)
		l.send("HELLO junk\n")
		b.app.expectPayload("lamp/junk/availability", "online")
		for _, tc := range []struct{ frame, want string }{
			{"\x00\x00\x00", "ERR malformed pair, want key=value"},
			{"brightness=\x00", "ERR brightness: not an integer"},
			{"\xff\xfe\xfd", "ERR invalid UTF-8"},
			{"scene=\xc3\x28", "ERR invalid UTF-8"},
			{strings.Repeat("{\"a\":", 100) + "1" + strings.Repeat("}", 100), "ERR a: nested deeper than 8 levels"},
			{strings.Repeat("[", 1000), "ERR malformed pair, want key=value"},
			{"brightness=99999999999999999999999", "ERR brightness: not an integer"},
			{"ambient=-1", "ERR ambient: not an integer"},
			{`{"brightness":1e400}`, "ERR brightness: not a non-negative integer"},
			{`{"brightness":-0}`, ""},
		} {
			l.send(tc.frame + "\n")
			if tc.want != "" {
				if got := l.line(); !strings.HasPrefix(got, tc.want) {
					t.Errorf("frame %.40q: got %q, want %q", tc.frame, got, tc.want)
				}
			}
		}
		l.conn.Close()
		// Whatever was accepted was published under junk, nothing else.
		b.app.expectPayload("lamp/junk/availability", "offline")
		b.check()
	})

	t.Run("HELLO flood for one id", func(t *testing.T) {
		for i := range 50 {
			l := attacker(t, addrs)
			hello := "HELLO good"
			if i%2 == 1 {
				hello = "HELLO good wrong-token"
			}
			l.send(hello + "\n")
			got, _ := io.ReadAll(io.LimitReader(l.r, 200))
			if s := string(got); s != "ERR not authorized\n" && s != "ERR too many failed attempts, try later\n" {
				t.Fatalf("flood HELLO %d: got %q, want it refused", i, s)
			}
		}
		b.check()
	})
}

// TestManyConnectionsFromOneAddress has a gateway of its own, with a long
// handshake deadline: with a short one, the attacker's idle connections
// would be closed as fast as it opens new ones, and the count of refusals
// would depend on the machine's speed.
func TestManyConnectionsFromOneAddress(t *testing.T) {
	g, addrs, _ := startWithDevices(t, "devices:\n  - {id: good, token: s3cret-token}\n", func(o *gateway.Options) {
		o.MaxLampsPerAddr = 64
		o.LampHandshakeTimeout = time.Hour
	})
	b := newBystanders(t, addrs)
	refused := g.BridgeStats().RefusedPerAddr
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2000 {
		c, err := dialFrom(t, "127.0.0.1", addrs.Bridge)
		if err != nil {
			break // the listen backlog is full: the gateway is refusing
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%d connections dialed; %+v", len(conns), g.BridgeStats())
		}
	})
	testwait.Until(t, "connections over the per-address limit refused", func() bool {
		return g.BridgeStats().RefusedPerAddr-refused >= uint64(len(conns)-64)
	})
	if open := g.BridgeStats().Connections; open > 64+1 {
		t.Errorf("open lamp connections: got %d, want at most 64 from the attacker plus the good lamp", open)
	}
	b.check()
}
