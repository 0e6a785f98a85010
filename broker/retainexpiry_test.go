package broker

import (
	"context"
	"net"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/lampgw/lampgw/internal/testwait"
)

// TestRetainedMessageExpiry: an MQTT 5 app's retained message with a
// message expiry interval is gone once it expires, and one without stays.
// The patched mochi skips its once-a-second expiry scan while no retained
// message has an expiry; if it lost count of the expiring ones, this
// message would never expire.
func TestRetainedMessageExpiry(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	conn, err := net.DialTimeout("tcp", b.MQTTAddr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := paho5.NewClient(paho5.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho5.Connect{ClientID: "expiring-app", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho5.Disconnect{})
	expiry := uint32(1)
	for _, p := range []*paho5.Publish{
		{Topic: "app/kept", Payload: []byte("kept"), QoS: 1, Retain: true},
		// Replaced once, so the count sees a replacement too.
		{Topic: "app/expiring", Payload: []byte("old"), QoS: 1, Retain: true,
			Properties: &paho5.PublishProperties{MessageExpiry: &expiry}},
		{Topic: "app/expiring", Payload: []byte("new"), QoS: 1, Retain: true,
			Properties: &paho5.PublishProperties{MessageExpiry: &expiry}},
	} {
		if _, err := c.Publish(ctx, p); err != nil {
			t.Fatalf("publish %s: %v", p.Topic, err)
		}
	}
	retained := func(topic string) bool {
		_, ok := b.srv.Topics.Retained.Get(topic)
		return ok
	}
	if !retained("app/expiring") {
		t.Fatal("app/expiring: not retained before it expired")
	}
	testwait.Until(t, "app/expiring to expire", func() bool { return !retained("app/expiring") })

	// A new app is replayed the kept message only; the marker, published
	// by the same client after its SUBSCRIBE, ends the replay.
	app := connectTCP(t, b.MQTTAddr().String(), "late-app")
	defer app.Disconnect(0)
	msgs := pahoSub(t, app, "app/#")
	wait(t, "marker", app.Publish("app/marker", 1, false, "end"))
	var got []string
	for m := next(t, "late-app", msgs); m.topic != "app/marker"; m = next(t, "late-app", msgs) {
		got = append(got, m.topic+"="+m.payload)
	}
	if len(got) != 1 || got[0] != "app/kept=kept" {
		t.Errorf("replayed %q, want only app/kept=kept", got)
	}
}
