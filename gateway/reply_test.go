package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/lampgw/lampgw/gateway"
)

// v5App is a real MQTT 5 client (paho.golang) playing an app that wants
// its commands' acknowledgements on a response topic.
type v5App struct {
	t    *testing.T
	name string
	c    *paho5.Client
	msgs chan *paho5.Publish
	// held are messages that arrived while next waited for another topic.
	held []*paho5.Publish
}

// dialV5 connects an MQTT 5 client as user (anonymous for "").
func dialV5(t *testing.T, addr net.Addr, user, password string) *v5App {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	a := &v5App{t: t, name: user, msgs: make(chan *paho5.Publish, 4096)}
	a.c = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			a.msgs <- pr.Packet
			return true, nil
		}},
	})
	cp := &paho5.Connect{ClientID: fmt.Sprintf("v5-app-%d", clientSeq.Add(1)), CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := a.c.Connect(ctx, cp); err != nil {
		t.Fatalf("v5 connect as %q: %v", user, err)
	}
	t.Cleanup(func() {
		a.c.Disconnect(&paho5.Disconnect{})
		select {
		case <-a.c.Done():
		case <-time.After(wait):
			t.Errorf("v5 client %q: not shut down within %v", user, wait)
		}
	})
	return a
}

// subscribe returns the SUBACK reason code for filter.
func (a *v5App) subscribe(filter string) byte {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := a.c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		a.t.Fatalf("%s: subscribe %s: %v", a.name, filter, err)
	}
	return sa.Reasons[0]
}

func (a *v5App) mustSubscribe(filter string) {
	a.t.Helper()
	if code := a.subscribe(filter); code > 2 {
		a.t.Fatalf("%s: subscribe %s: refused with %#x", a.name, filter, code)
	}
}

// command publishes a command at QoS 1 with a response topic (none if
// "") and correlation data.
func (a *v5App) command(topic, payload, responseTopic string, correlation []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := a.c.Publish(ctx, &paho5.Publish{
		QoS: 1, Topic: topic, Payload: []byte(payload),
		Properties: &paho5.PublishProperties{ResponseTopic: responseTopic, CorrelationData: correlation},
	})
	if err != nil {
		a.t.Fatalf("%s: publish %s: %v", a.name, topic, err)
	}
}

// next waits for the next message on topic and returns it with every
// message on other topics that arrived before it. Those stay held for a
// later next, so the order per topic is kept.
func (a *v5App) next(topic string) (*paho5.Publish, []*paho5.Publish) {
	a.t.Helper()
	var before []*paho5.Publish
	for i, p := range a.held {
		if p.Topic == topic {
			a.held = append(a.held[:i:i], a.held[i+1:]...)
			return p, before
		}
		before = append(before, p)
	}
	deadline := time.After(wait)
	for {
		select {
		case p := <-a.msgs:
			if p.Topic == topic {
				return p, before
			}
			a.held = append(a.held, p)
			before = append(before, p)
		case <-deadline:
			a.t.Fatalf("%s: no message on %s within %v; got %v", a.name, topic, wait, describe(before))
			return nil, nil
		}
	}
}

// expectReply waits for the next message on topic and checks that it is
// an ack with correlation data corr and the rest as expectAck.
func (a *v5App) expectReply(topic string, corr []byte, key, value, status string) ack {
	a.t.Helper()
	p, _ := a.next(topic)
	var got ack
	if err := json.Unmarshal(p.Payload, &got); err != nil {
		a.t.Fatalf("%s: %q is not an ack: %v", topic, p.Payload, err)
	}
	var gotCorr []byte
	if p.Properties != nil {
		gotCorr = p.Properties.CorrelationData
	}
	if !bytes.Equal(gotCorr, corr) || got.RID != "" || got.Key != key || string(got.Value) != value || got.Status != status || got.Time.IsZero() {
		a.t.Fatalf("%s: got %s with correlation data %q, want key %q value %s status %s, correlation data %q and a time",
			topic, p.Payload, gotCorr, key, value, status, corr)
	}
	return got
}

func describe(ps []*paho5.Publish) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %q", p.Topic, p.Payload))
	}
	return out
}

// onlineV5 starts a gateway and connects a lamp that identified with
// hello, and an anonymous v5 app (an unrestricted admin, from loopback
// without a users file) subscribed to filters, once the lamp is online.
func onlineV5(t *testing.T, hello string, filters ...string) (*v5App, *lamp, gateway.Addrs) {
	t.Helper()
	_, addrs := startWith(t, gateway.Options{
		MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", Logger: testLogger(t),
		LampMaxRate: -1, // commands follow each other at once; pacing has its tests
	})
	a := dialV5(t, addrs.MQTT, "", "")
	for _, f := range filters {
		a.mustSubscribe(f)
	}
	l := dialLamp(t, addrs.Bridge)
	l.send(hello + "\n")
	// Retained or live, whichever the HELLO beat.
	a.mustSubscribe("lamp/kitchen/availability")
	if p, _ := a.next("lamp/kitchen/availability"); string(p.Payload) != "online" {
		t.Fatalf("availability: got %q, want online", p.Payload)
	}
	return a, l, addrs
}

// TestMQTT5Replies: a command published by an MQTT 5 client with a
// Response Topic has its acks published there too, with its Correlation
// Data, on both command topics, for a text and a JSON lamp.
func TestMQTT5Replies(t *testing.T) {
	for _, tc := range []struct {
		name, hello, line700, report700, lineMode string
	}{
		{"text lamp", "HELLO kitchen", "brightness=700", "brightness=700", "mode=manual"},
		{"JSON lamp", `{"id":"kitchen"}`, `{"brightness":700}`, `{"brightness":700}`, `{"mode":"manual"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, l, _ := onlineV5(t, tc.hello, "app/replies/#", "lamp/kitchen/ack")

			// lamp/<id>/<key>/set, plain.
			a.command("lamp/kitchen/brightness/set", "700", "app/replies/1", []byte("c-1"))
			l.expectLine(tc.line700)
			a.expectReply("app/replies/1", []byte("c-1"), "brightness", "700", "written")
			l.send(tc.report700 + "\n")
			a.expectReply("app/replies/1", []byte("c-1"), "brightness", "700", "confirmed")

			// The same acks on lamp/<id>/ack, in the same order.
			for _, status := range []string{"written", "confirmed"} {
				p, _ := a.next("lamp/kitchen/ack")
				if !strings.Contains(string(p.Payload), `"status":"`+status+`"`) {
					t.Fatalf("lamp/kitchen/ack: got %s, want %s", p.Payload, status)
				}
			}

			// lamp/<id>/set, JSON; correlation data is bytes, not text.
			corr := []byte{0, 1, 0xfe, 0xff}
			a.command("lamp/kitchen/set", `{"mode":"manual"}`, "app/replies/2", corr)
			l.expectLine(tc.lineMode)
			a.expectReply("app/replies/2", corr, "mode", `"manual"`, "written")

			// A response topic without correlation data works too.
			a.command("lamp/kitchen/power/set", "on", "app/replies/3", nil)
			l.line()
			a.expectReply("app/replies/3", nil, "power", `"on"`, "written")
		})
	}
}

// TestMQTT5RepliesQueuedAndRejected: an offline lamp's command is
// acknowledged queued; an invalid one rejected, with the reason, whatever
// made it invalid.
func TestMQTT5RepliesQueuedAndRejected(t *testing.T) {
	a, l, _ := onlineV5(t, "HELLO kitchen", "app/replies/#")

	a.command("lamp/hall/brightness/set", "300", "app/replies/q", []byte("q"))
	a.expectReply("app/replies/q", []byte("q"), "brightness", "300", "queued")

	for _, tc := range []struct{ topic, payload, reason string }{
		{"lamp/kitchen/brightness/set", "5000", "brightness: out of range 0..1023"},
		{"lamp/kitchen/set", `{"brightness":`, ""},
		{"lamp/kitchen/Bad/set", "1", ""},
		{"lamp/kitchen/brightness/set", strings.Repeat("1", 2000), ""}, // over --max-frame
	} {
		corr := []byte("r-" + tc.topic)
		a.command(tc.topic, tc.payload, "app/replies/r", corr)
		got := a.expectReply("app/replies/r", corr, "", "", "rejected")
		if got.Error == "" || tc.reason != "" && got.Error != tc.reason {
			t.Errorf("%s %.20q: rejected with %q, want %q", tc.topic, tc.payload, got.Error, tc.reason)
		}
	}
	// Nothing of it reached the lamp: its next line is the next command.
	a.command("lamp/kitchen/brightness/set", "1", "", nil)
	l.expectLine("brightness=1")
}

// TestMQTT5RefusedResponseTopics: a response topic under the lamp prefix
// or the gateway's own, or correlation data over 256 bytes, gets no
// reply, and the command still reaches the lamp.
func TestMQTT5RefusedResponseTopics(t *testing.T) {
	forbidden := []string{"lamp/kitchen/state", "lamp/kitchen/brightness", "lamp/kitchen/ack", "lampgw/status", "lampgw/replies"}
	a, l, _ := onlineV5(t, "HELLO kitchen", append(forbidden, "app/replies/#")...)

	for i, rt := range forbidden {
		a.command("lamp/kitchen/brightness/set", fmt.Sprint(i), rt, []byte("forbidden"))
		l.expectLine(fmt.Sprintf("brightness=%d", i))
	}
	a.command("lamp/kitchen/brightness/set", "99", "app/replies/big", bytes.Repeat([]byte("x"), 257))
	l.expectLine("brightness=99")

	// The acks of a command that follows come after any of those would
	// have: the lamp's writes, and so their acks, are in order.
	a.command("lamp/kitchen/mode/set", "auto", "app/replies/mark", []byte("mark"))
	l.expectLine("mode=auto")
	_, before := a.next("app/replies/mark")
	for _, p := range before {
		// Only replies carry correlation data; lamp/kitchen/ack holds the
		// mark's own ack, and the refused commands set brightness.
		if p.Properties != nil && len(p.Properties.CorrelationData) > 0 || p.Topic == "app/replies/big" ||
			!p.Retain && strings.Contains(string(p.Payload), "brightness") {
			t.Errorf("reply to a refused response topic: %s %q", p.Topic, p.Payload)
		}
	}
}

// TestMQTT5RepliesWithUsers: with a users file, an app's reply topics are
// lampgw/replies/<user>/..., which only it may read; a response topic
// its sender may not read (another user's replies, or a topic only an
// admin may read) gets no replies, and the command still runs.
func TestMQTT5RepliesWithUsers(t *testing.T) {
	w := startWorld(t, usersFile(t, "admin admin", "tablet app", "other app"), nil)
	tablet := dialV5(t, w.addrs.MQTT, "tablet", "tablet-pw")
	other := dialV5(t, w.addrs.MQTT, "other", "other-pw")
	tablet.mustSubscribe("lampgw/replies/tablet/#")
	other.mustSubscribe("lampgw/replies/other/#")
	if code := other.subscribe("lampgw/replies/tablet/#"); code < 0x80 {
		t.Fatalf("other: subscribe to tablet's replies: got %#x, want refused", code)
	}
	if code := tablet.subscribe("app/replies"); code < 0x80 {
		t.Fatalf("tablet: subscribe to app/replies: got %#x, want refused (R4)", code)
	}

	tablet.command("lamp/kitchen-1/brightness/set", "700", "lampgw/replies/tablet/1", []byte("t-1"))
	w.kitchen.expectLine("brightness=700")
	tablet.expectReply("lampgw/replies/tablet/1", []byte("t-1"), "brightness", "700", "written")
	// An admin without lamp patterns reads every reply topic; over MQTT
	// 3.1.1 it gets the payload alone.
	if before := w.mark(w.observer); !hasTopic(before, "lampgw/replies/tablet/1") {
		t.Errorf("admin: no reply on lampgw/replies/tablet/1 in %v", topicsOf(before))
	}

	tablet.command("lamp/kitchen-1/brightness/set", "300", "lampgw/replies/other/x", []byte("steal"))
	w.kitchen.expectLine("brightness=300")
	w.logs.wait(t, "response topic refused", "lampgw/replies/other/x")
	tablet.command("lamp/kitchen-1/brightness/set", "301", "app/replies", []byte("admin-only"))
	w.kitchen.expectLine("brightness=301")
	w.logs.wait(t, "response topic refused", "app/replies")

	// other's own command, written after tablet's: its reply comes after
	// any reply of theirs would have.
	other.command("lamp/kitchen-1/mode/set", "auto", "lampgw/replies/other/mark", []byte("mark"))
	w.kitchen.expectLine("mode=auto")
	_, before := other.next("lampgw/replies/other/mark")
	if len(before) > 0 {
		t.Errorf("other got replies to tablet's commands: %v", describe(before))
	}
	if before := w.mark(w.observer); hasTopic(before, "app/replies") {
		t.Errorf("admin got a reply on app/replies: %v", topicsOf(before))
	}

	// The lamp confirms, so that no ack is due when the test has ended
	// (the registry's confirmation timers outlive the gateway, and this
	// world logs to t).
	w.kitchen.send("brightness=301 mode=auto\n")
	other.expectReply("lampgw/replies/other/mark", []byte("mark"), "mode", `"auto"`, "confirmed")
}
