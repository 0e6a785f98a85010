package bridge_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
)

func TestCheckReply(t *testing.T) {
	long := strings.Repeat("a", bridge.MaxResponseTopic)
	for _, tc := range []struct {
		name, prefix, topic string
		correlation         int // bytes
		want                error
	}{
		{name: "app topic", prefix: "lamp", topic: "app/replies/1"},
		{name: "own reply topic", prefix: "lamp", topic: "lampgw/replies/tablet"},
		{name: "below own reply topic", prefix: "lamp", topic: "lampgw/replies/tablet/1"},
		{name: "prefix lookalike", prefix: "lamp", topic: "lampx/kitchen/state"},
		{name: "gateway lookalike", prefix: "lamp", topic: "lampgwx/status"},
		{name: "longest topic", prefix: "lamp", topic: long},
		{name: "longest correlation", prefix: "lamp", topic: "a", correlation: bridge.MaxCorrelation},
		{name: "other prefix's topic", prefix: "home/lamp", topic: "lamp/kitchen/state"},

		{name: "empty", prefix: "lamp", topic: "", want: bridge.ErrResponseTopic},
		{name: "plus", prefix: "lamp", topic: "a/+", want: bridge.ErrResponseTopic},         // [MQTT-3.3.2-14]
		{name: "hash", prefix: "lamp", topic: "a/#", want: bridge.ErrResponseTopic},         // [MQTT-3.3.2-14]
		{name: "dollar", prefix: "lamp", topic: "$SYS/x", want: bridge.ErrResponseTopic},    // [MQTT-4.7.2-1]
		{name: "NUL", prefix: "lamp", topic: "a\x00b", want: bridge.ErrResponseTopic},       // [MQTT-1.5.4-2]
		{name: "not UTF-8", prefix: "lamp", topic: "a\xffb", want: bridge.ErrResponseTopic}, // [MQTT-1.5.4-1]
		{name: "too long", prefix: "lamp", topic: long + "a", want: bridge.ErrResponseTopic},
		{name: "prefix", prefix: "lamp", topic: "lamp", want: bridge.ErrResponseTopic},
		{name: "lamp state", prefix: "lamp", topic: "lamp/kitchen/state", want: bridge.ErrResponseTopic},
		{name: "lamp ack", prefix: "lamp", topic: "lamp/kitchen/ack", want: bridge.ErrResponseTopic},
		{name: "long prefix", prefix: "home/lamp", topic: "home/lamp/kitchen/brightness", want: bridge.ErrResponseTopic},
		{name: "gateway", prefix: "lamp", topic: "lampgw", want: bridge.ErrResponseTopic},
		{name: "gateway status", prefix: "lamp", topic: "lampgw/status", want: bridge.ErrResponseTopic},
		{name: "reply root", prefix: "lamp", topic: "lampgw/replies", want: bridge.ErrResponseTopic},
		{name: "reply root slash", prefix: "lamp", topic: "lampgw/replies/", want: bridge.ErrResponseTopic},
		{name: "no user", prefix: "lamp", topic: "lampgw/replies//x", want: bridge.ErrResponseTopic},
		{name: "correlation too long", prefix: "lamp", topic: "a", correlation: bridge.MaxCorrelation + 1, want: bridge.ErrCorrelationData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := devices.Reply{Topic: tc.topic, Correlation: make([]byte, tc.correlation)}
			if got := bridge.CheckReply(tc.prefix, r); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("CheckReply(%q, %.20q): got %v, want %v", tc.prefix, tc.topic, got, tc.want)
			}
		})
	}
}

// plainBus hides every method of its Bus but Bus's own: a bus that has
// no MQTT 5 properties, as mqttbus.
type plainBus struct{ bridge.Bus }

// TestCommandsWithoutReplyBus: on a Bus that is not a ReplyBus the server
// subscribes to commands with Subscribe, and acks still reach
// lamp/<id>/ack.
func TestCommandsWithoutReplyBus(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	if _, ok := bridge.Bus(e.bus).(bridge.ReplyBus); !ok {
		t.Fatal("broker.InlineBus is not a bridge.ReplyBus")
	}
	// The env's server, on the InlineBus itself, makes way for one on the
	// plain bus, sharing its broker and recorded messages.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := bridge.NewServer(bridge.Options{Bus: plainBus{e.bus}, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	e = &env{t: t, bus: e.bus, srv: srv, msgs: e.msgs}

	l := e.dial(context.Background(), true)
	l.send(t, "HELLO kitchen\n")
	e.expect(t, online("kitchen"))
	e.publish(t, "lamp/kitchen/set", `{"brightness":5,"rid":"r"}`)
	l.expectLine(t, "brightness=5")
	if m := e.next(t); m.topic != "lamp/kitchen/ack" || !strings.Contains(m.payload, `"rid":"r"`) || !strings.Contains(m.payload, `"status":"written"`) {
		t.Fatalf("published: got %v, want the written ack on lamp/kitchen/ack", m)
	}
}
