package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/engine"
	"github.com/lampgw/lampgw/internal/testwait"
)

// startMosquitto runs a real Mosquitto for a cluster test and returns its
// MQTT address.
func startMosquitto(t *testing.T) net.Addr {
	t.Helper()
	p, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	engine.Cleanup(t, p)
	addr, err := net.ResolveTCPAddr("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startInstance starts a gateway as cluster instance id on broker.
func startInstance(t *testing.T, broker net.Addr, id string) (*gateway.Gateway, gateway.Addrs) {
	t.Helper()
	return startWith(t, gateway.Options{
		BridgeAddr: "127.0.0.1:0",
		BrokerURL:  "mqtt://" + broker.String(),
		InstanceID: id,
		Logger:     testLogger(t).With().Str("instance", id).Logger(),
	})
}

// hello connects a lamp to a bridge and waits until the app sees it held
// there: online, and its holder record naming the instance, published
// after its command subscriptions were made.
func hello(t *testing.T, a *app, bridgeAddr net.Addr, id, instance string) *lamp {
	t.Helper()
	l := dialLamp(t, bridgeAddr)
	l.send("HELLO " + id + "\n")
	a.expectPayload("lamp/"+id+"/availability", "online")
	a.expectPayload("lampgw/holders/"+id, `{"instance":"`+instance+`"}`)
	return l
}

// TestClusterCommandsReachTheHolder runs two instances on one Mosquitto:
// a command reaches the lamp through whichever instance holds it, and a
// lamp that reconnects to the other instance is let go by the first
// without a stale offline.
func TestClusterCommandsReachTheHolder(t *testing.T) {
	broker := startMosquitto(t)
	_, a := startInstance(t, broker, "a")
	_, b := startInstance(t, broker, "b")
	app := newApp(t, broker, "lamp/#", "lampgw/#")

	l1 := hello(t, app, a.Bridge, "l1", "a")
	l3 := hello(t, app, a.Bridge, "l3", "a")
	l2 := hello(t, app, b.Bridge, "l2", "b")
	app.publish("lamp/l1/brightness/set", "300", false)
	l1.expectLine("brightness=300")
	app.publish("lamp/l2/brightness/set", "400", false)
	l2.expectLine("brightness=400")

	// l1 comes back through the load balancer on b, while a still has
	// its old connection.
	moved := hello(t, app, b.Bridge, "l1", "b")
	l1.expectClosed()
	// Anything a published after letting l1 go comes before l3's report
	// on a's one connection to the broker.
	l3.send("brightness=5\n")
	before := app.expectPayload("lamp/l3/brightness", "5")
	noneOn(t, before, "lamp/l1/availability")

	app.publish("lamp/l1/brightness/set", "600", false)
	moved.expectLine("brightness=600")
}

// TestClusterAdoptsLampsOfAnInstanceThatLeaves shuts one instance down:
// the other adopts its lamps, keeps the commands sent to them while
// they are away, and writes them when they reconnect there.
func TestClusterAdoptsLampsOfAnInstanceThatLeaves(t *testing.T) {
	broker := startMosquitto(t)
	ga, a := startInstance(t, broker, "a")
	_, b := startInstance(t, broker, "b")
	app := newApp(t, broker, "lamp/#", "lampgw/#")

	l1 := hello(t, app, a.Bridge, "l1", "a")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ga.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l1.expectClosed()
	app.expectPayload("lampgw/a/status", "offline")
	app.expectPayload("lampgw/holders/l1", `{"instance":"b","adopted":true}`)

	app.publish("lamp/l1/set", `{"brightness":700,"rid":"r1"}`, false)
	app.expectAck("lamp/l1/ack", "r1", "brightness", "700", "queued")
	back := hello(t, app, b.Bridge, "l1", "b")
	back.expectLine("brightness=700")
	app.expectAck("lamp/l1/ack", "r1", "brightness", "700", "written")
	back.send("brightness=700\n")
	app.expectAck("lamp/l1/ack", "r1", "brightness", "700", "confirmed")
}

// TestClusterBrokerOutage takes the external broker away: /readyz says
// so, a lamp's reports wait in the buffer, and reach the broker when it
// is back.
func TestClusterBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	first, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: dir})
	engine.Require(t, err)
	engine.Cleanup(t, first)
	broker, _ := net.ResolveTCPAddr("tcp", first.Addr)
	_, addrs := startWith(t, gateway.Options{
		BridgeAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BrokerURL: "mqtt://" + first.Addr, InstanceID: "a",
		Logger: testLogger(t),
	})
	app := newApp(t, broker, "lamp/#", "lampgw/#")
	l := hello(t, app, addrs.Bridge, "l1", "a")
	base := "http://" + addrs.HTTP.String()
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz with the broker up: %d %q", code, body)
	}
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "lampgw_upstream_connected 1") {
		t.Errorf("/metrics lacks lampgw_upstream_connected 1:\n%s", body)
	}

	first.Kill()
	testwait.Until(t, "/readyz to say the broker is unreachable", func() bool {
		code, body := httpGet(t, base+"/readyz")
		return code == 503 && strings.Contains(body, "broker unreachable")
	})
	l.send("brightness=11\n")
	l.send("brightness=12\n")
	testwait.Until(t, "the report to wait in the buffer", func() bool {
		_, body := httpGet(t, base+"/metrics")
		return strings.Contains(body, "lampgw_upstream_buffered_messages ") && !strings.Contains(body, "lampgw_upstream_buffered_messages 0")
	})

	port := broker.Port
	second, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir(), Port: port})
	engine.Require(t, err)
	engine.Cleanup(t, second)
	back := newApp(t, broker, "lamp/l1/brightness", "lamp/l1/availability", "lampgw/holders/l1")
	// The latest retained value, once the buffer is sent: mosquitto came
	// back empty, so it can only have come from the buffer. The lamp's
	// availability and holder record are said again after the
	// reconnection, and the lamp can be commanded.
	back.expectPayload("lamp/l1/brightness", "12")
	back.expectPayload("lampgw/holders/l1", `{"instance":"a"}`)
	back.expectPayload("lamp/l1/availability", "online")
	back.publish("lamp/l1/brightness/set", "13", false)
	l.expectLine("brightness=13")
	testwait.Until(t, "/readyz ready again", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
