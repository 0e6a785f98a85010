package gateway_test

import (
	"context"
	"net"
	"testing"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/engine"
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
