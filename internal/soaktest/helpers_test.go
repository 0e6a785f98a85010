package soaktest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/lampgw/lampgw/gateway"
)

// wait bounds a single step: a connection, a publish, one message.
const wait = 10 * time.Second

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("LAMPGW_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("test", t.Name()).Logger()
}

// leakCheck fails t if goroutines started during it are still running
// once its cleanups (the gateway's shutdown among them) are done.
// Registered first, it runs last.
func leakCheck(t testing.TB) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// startGateway starts a gateway with MQTT and lamps on loopback, tweaked
// by tweak, and shuts it down when the test ends.
func startGateway(t testing.TB, tweak func(*gateway.Options)) (*gateway.Gateway, gateway.Addrs) {
	t.Helper()
	opts := gateway.Options{
		MQTTAddr:   "127.0.0.1:0",
		BridgeAddr: "127.0.0.1:0",
		DataDir:    t.TempDir(),
		Logger:     testLogger(t),
	}
	if tweak != nil {
		tweak(&opts)
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g, g.Addrs()
}

var clientSeq atomic.Int64

// connectMQTT connects a paho client, v3.1.1, clean session, no
// reconnect, and disconnects it when the test ends.
func connectMQTT(t testing.TB, addr net.Addr, name string, tweak func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr.String()).
		SetClientID(fmt.Sprintf("%s-%d", name, clientSeq.Add(1))).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(wait).
		SetOrderMatters(true)
	if tweak != nil {
		tweak(opts)
	}
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", name, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func subscribe(t testing.TB, c paho.Client, filters map[string]byte, h paho.MessageHandler) {
	t.Helper()
	if tok := c.SubscribeMultiple(filters, h); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %d filters: %v", len(filters), tok.Error())
	}
}

func publish(t testing.TB, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// until polls cond every few milliseconds until it holds, failing t with
// what after d. It is internal/testwait.Until with the deadline a
// parameter: the end of a soak takes longer than one step.
func until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// heapInuse is the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// quantiles returns the median, the 99th percentile and the maximum of d.
func quantiles(d []time.Duration) (p50, p99, worst time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100], s[len(s)-1]
}

// sysWatch follows the embedded broker's $SYS counters, which mochi
// republishes every second: the gateway has no other window on how many
// messages the broker dropped for slow clients.
type sysWatch struct {
	mu   sync.Mutex
	vals map[string]int64
	ch   chan struct{}
}

func watchSys(t testing.TB, addr net.Addr) *sysWatch {
	t.Helper()
	w := &sysWatch{vals: make(map[string]int64), ch: make(chan struct{}, 1)}
	c := connectMQTT(t, addr, "sys", nil)
	subscribe(t, c, map[string]byte{"$SYS/broker/messages/dropped": 0, "$SYS/broker/clients/connected": 0}, func(_ paho.Client, m paho.Message) {
		n, err := strconv.ParseInt(string(m.Payload()), 10, 64)
		if err != nil {
			return
		}
		w.mu.Lock()
		w.vals[strings.TrimPrefix(m.Topic(), "$SYS/broker/")] = n
		w.mu.Unlock()
		select {
		case w.ch <- struct{}{}:
		default:
		}
	})
	return w
}

// get returns the last value of counter ("messages/dropped").
func (w *sysWatch) get(counter string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.vals[counter]
}

// fresh waits for the next update of the counters, so that get returns
// a value taken after now, and fails t after d.
func (w *sysWatch) fresh(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-w.ch:
	default:
	}
	select {
	case <-w.ch:
	case <-time.After(d):
		t.Fatalf("no $SYS update within %v", d)
	}
}

// rawLamp is a lamp's firmware as a bare socket, for tests that drive
// the protocol themselves.
type rawLamp struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialLamp(t testing.TB, from string, addr net.Addr) *rawLamp {
	t.Helper()
	d := net.Dialer{Timeout: wait}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawLamp{conn: conn, r: bufio.NewReader(conn)}
}

func (l *rawLamp) send(t testing.TB, s string) {
	t.Helper()
	l.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := l.conn.Write([]byte(s)); err != nil {
		t.Fatalf("lamp write: %v", err)
	}
}

// line reads the next line the gateway sent, without its "\n".
func (l *rawLamp) line(t testing.TB) string {
	t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(wait))
	s, err := l.r.ReadString('\n')
	if err != nil {
		t.Fatalf("lamp read: %v (partial %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}
