package lampsim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/lampsim"
	"github.com/lampgw/lampgw/internal/testwait"
)

// startGateway runs the real gateway in-process on loopback ports until
// the test ends; devicesFile may be "".
func startGateway(t *testing.T, devicesFile string) (*gateway.Gateway, gateway.Addrs) {
	t.Helper()
	g, err := gateway.New(gateway.Options{
		MQTTAddr:    "127.0.0.1:0",
		BridgeAddr:  "127.0.0.1:0",
		DevicesFile: devicesFile,
		RedialMin:   20 * time.Millisecond,
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Timeout)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g, g.Addrs()
}

// registryOnline waits until the gateway counts every lamp of ids online.
//
// The embedded broker queues at most 64 messages per client and drops
// the rest for a client that lags (broker.DefaultMaxClientWritesPending),
// and 50 lamps coming up at once publish about 350 under -race. So tests
// with many lamps first wait here, on the gateway's own view, and then
// read MQTT's retained topics from a fresh subscription to a single
// level, at most 50 messages, which no queue drops.
func registryOnline(t *testing.T, g *gateway.Gateway, ids []string) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("the gateway to count %d lamps online", len(ids)), func() bool {
		for _, id := range ids {
			if s, ok := g.Registry().Get(id); !ok || !s.Online {
				return false
			}
		}
		return true
	})
}

// app is a real MQTT client subscribed to filters. It keeps the last
// payload of every topic, which is what a dashboard shows, and tests wait
// on that.
type app struct {
	t    *testing.T
	c    paho.Client
	mu   sync.Mutex
	last map[string]string
}

var clientSeq atomic.Int64

func newApp(t *testing.T, addr net.Addr, filters ...string) *app {
	t.Helper()
	a := &app{t: t, last: make(map[string]string)}
	a.c = paho.NewClient(paho.NewClientOptions().
		AddBroker("tcp://" + addr.String()).
		SetClientID(fmt.Sprintf("lampsim-test-%d", clientSeq.Add(1))).
		SetAutoReconnect(false).
		SetConnectTimeout(testwait.Timeout).
		SetOrderMatters(true))
	if tok := a.c.Connect(); !tok.WaitTimeout(testwait.Timeout) || tok.Error() != nil {
		t.Fatalf("app connect: %v", tok.Error())
	}
	t.Cleanup(func() { a.c.Disconnect(100) })
	for _, f := range filters {
		tok := a.c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.last[m.Topic()] = string(m.Payload())
		})
		if !tok.WaitTimeout(testwait.Timeout) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	return a
}

func (a *app) get(topic string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[topic]
}

// wait waits until topic's last payload satisfies ok and returns it.
func (a *app) wait(topic, what string, ok func(string) bool) string {
	a.t.Helper()
	testwait.Until(a.t, topic+" "+what+" (last "+strconv.Quote(a.get(topic))+")", func() bool { return ok(a.get(topic)) })
	return a.get(topic)
}

func (a *app) waitFor(topic, want string) {
	a.t.Helper()
	a.wait(topic, "= "+want, func(s string) bool { return s == want })
}

// waitAll waits until key's last payload is want for every lamp of ids.
func (a *app) waitAll(ids []string, key, want string) {
	a.t.Helper()
	testwait.Until(a.t, fmt.Sprintf("%s %s for %d lamps", key, want, len(ids)), func() bool {
		for _, id := range ids {
			if a.get("lamp/"+id+"/"+key) != want {
				return false
			}
		}
		return true
	})
}

func (a *app) publish(topic, payload string) {
	a.t.Helper()
	if tok := a.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(testwait.Timeout) || tok.Error() != nil {
		a.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func ids(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i+1)
	}
	return s
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// fast are options for lamps under a frozen clock that read their sensor
// every 5 ms, so a moved clock shows within milliseconds.
func fast(t *testing.T, c *clock) lampsim.Options {
	return lampsim.Options{Interval: 5 * time.Millisecond, Now: c.now, Logger: testLogger(t)}
}

// oneLamp runs a gateway and one dial-in lamp "sim-1" speaking dialect
// under a clock stopped at noon, and an app subscribed to lamp/#.
func oneLamp(t *testing.T, dialect bridge.Dialect) (*app, *clock) {
	t.Helper()
	_, addrs := startGateway(t, "")
	a := newApp(t, addrs.MQTT, "lamp/#")
	c := newClock(noon)
	opts := fast(t, c)
	opts.Dialect = dialect
	dial(t, addrs.Bridge, opts)
	return a, c
}

func TestDialInLampsGoOnline(t *testing.T) {
	g, addrs := startGateway(t, "")
	opts := fast(t, newClock(noon))
	opts.Count = 50
	cancel, wait := dial(t, addrs.Bridge, opts)
	lamps := ids("sim-", 50)
	registryOnline(t, g, lamps)

	avail := newApp(t, addrs.MQTT, "lamp/+/availability")
	avail.waitAll(lamps, "availability", "online")
	states := newApp(t, addrs.MQTT, "lamp/+/state")
	for _, id := range lamps {
		states.wait("lamp/"+id+"/state", "to hold every key", func(s string) bool {
			return strings.Contains(s, `"brightness":`) && strings.Contains(s, `"ambient":`) &&
				strings.Contains(s, `"mode":"auto"`) && strings.Contains(s, `"power":"on"`)
		})
	}
	// A clean exit closes every socket, and the gateway sees them go.
	cancel()
	wait()
	avail.waitAll(lamps, "availability", "offline")
}

func TestAutoLampFollowsTheSun(t *testing.T) {
	for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
		t.Run(d.String(), func(t *testing.T) {
			a, c := oneLamp(t, d)
			a.waitFor("lamp/sim-1/mode", "auto")
			day := atoi(a.wait("lamp/sim-1/brightness", "reported", func(s string) bool { return s != "" }))
			dayAmbient := atoi(a.get("lamp/sim-1/ambient"))

			c.set(noon.Add(12 * time.Hour)) // midnight
			night := atoi(a.wait("lamp/sim-1/brightness", fmt.Sprintf("above its noon value %d", day), func(s string) bool {
				return atoi(s) > day
			}))
			nightAmbient := atoi(a.wait("lamp/sim-1/ambient", fmt.Sprintf("below its noon value %d", dayAmbient), func(s string) bool {
				return atoi(s) < dayAmbient
			}))
			// The darkest room gets the brightest lamp: ambient near the
			// sensor's floor, brightness near the top.
			if nightAmbient > 40 || night < 900 {
				t.Errorf("midnight: ambient %d, brightness %d; want ambient <= 40 and brightness >= 900", nightAmbient, night)
			}
		})
	}
}

func TestCommandChangesManualLamp(t *testing.T) {
	for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
		t.Run(d.String(), func(t *testing.T) {
			a, c := oneLamp(t, d)
			a.waitFor("lamp/sim-1/availability", "online")

			a.publish("lamp/sim-1/set", `{"mode":"manual","brightness":300}`)
			a.waitFor("lamp/sim-1/mode", "manual")
			a.waitFor("lamp/sim-1/brightness", "300")
			a.publish("lamp/sim-1/brightness/set", "700")
			a.waitFor("lamp/sim-1/brightness", "700")

			// Manual holds through the night: ambient falls, brightness
			// stays.
			ambient := atoi(a.get("lamp/sim-1/ambient"))
			c.set(noon.Add(12 * time.Hour))
			a.wait("lamp/sim-1/ambient", "to fall", func(s string) bool { return atoi(s) < ambient })
			if got := a.get("lamp/sim-1/brightness"); got != "700" {
				t.Fatalf("brightness after dark: got %s, want 700", got)
			}
		})
	}
}

// listenRange binds count lamps in server mode on consecutive ports of
// 127.0.0.1, trying random base ports until one whole range is free, and
// serves them until the test ends.
func listenRange(t *testing.T, opts lampsim.Options) *lampsim.Server {
	t.Helper()
	var err error
	for range 20 {
		base := 20000 + rand.IntN(30000)
		var s *lampsim.Server
		if s, err = lampsim.Listen(fmt.Sprintf("127.0.0.1:%d", base), opts); err == nil {
			serveInBackground(t, s)
			return s
		}
	}
	t.Fatalf("no free range of %d ports: %v", opts.Count, err)
	return nil
}

func TestServerModeThroughGateway(t *testing.T) {
	c := newClock(noon)
	var yaml strings.Builder
	yaml.WriteString("devices:\n")
	var all []string
	// 25 text and 25 JSON lamps: the gateway must speak first in the
	// dialect the devices file names, since these lamps never do.
	for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
		opts := fast(t, c)
		opts.Count, opts.Dialect, opts.IDPrefix = 25, d, "esp-"+d.String()+"-"
		s := listenRange(t, opts)
		for i, id := range s.IDs() {
			fmt.Fprintf(&yaml, "  - id: %s\n    name: ESP lamp %d\n    dial: %s\n    dialect: %s\n", id, i+1, s.Addrs()[i], d)
		}
		all = append(all, s.IDs()...)
	}
	path := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(path, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	g, addrs := startGateway(t, path)
	registryOnline(t, g, all)
	newApp(t, addrs.MQTT, "lamp/+/availability").waitAll(all, "availability", "online")

	for _, id := range []string{"esp-text-7", "esp-json-7"} {
		a := newApp(t, addrs.MQTT, "lamp/"+id+"/#")
		a.waitFor("lamp/"+id+"/mode", "auto")
		a.publish("lamp/"+id+"/brightness/set", "200")
		a.waitFor("lamp/"+id+"/brightness", "200")
		a.waitFor("lamp/"+id+"/mode", "manual")
		a.publish("lamp/"+id+"/set", `{"mode":"manual","brightness":1000}`)
		a.waitFor("lamp/"+id+"/brightness", "1000")
	}
}
