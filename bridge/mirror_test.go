package bridge_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/lampgw/lampgw/bridge"
)

func TestDebugMirror(t *testing.T) {
	for _, on := range []bool{true, false} {
		e := newEnv(t, bridge.Options{DebugMirror: on})
		got := make(chan msg, 16)
		unsub, err := e.bus.Subscribe("lampgw/debug/#", 0, func(topic string, payload []byte, _ bool) {
			got <- msg{topic: topic, payload: string(payload)}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen s3cret\r\n")
		e.expect(t, online("kitchen"))
		l.send(t, "brightness=5\n")
		e.publish(t, "lamp/kitchen/brightness/set", "7")
		l.expectLine(t, "brightness=7")
		l.send(t, `{"id":"kitchen","token":"s3cret","x":"s3cret-not"}`+"\n")
		e.drainTo(t, value("kitchen", "x", "s3cret-not"))
		l.send(t, "HELLO other s3cret\n")
		l.expectLine(t, "ERR already identified as kitchen")
		want := []msg{
			{topic: "lampgw/debug/kitchen/rx", payload: "HELLO kitchen ***"},
			{topic: "lampgw/debug/kitchen/rx", payload: "brightness=5"},
			{topic: "lampgw/debug/kitchen/tx", payload: "brightness=7"},
			{topic: "lampgw/debug/kitchen/rx", payload: `{"id":"kitchen","token":"***","x":"***-not"}`},
			{topic: "lampgw/debug/kitchen/rx", payload: "HELLO other ***"},
			{topic: "lampgw/debug/kitchen/tx", payload: "ERR already identified as kitchen"},
		}
		if !on {
			want = nil
			// A marker through the same bus: anything mirrored would
			// have come before it.
			e.bus.Publish("lampgw/debug/marker", []byte("end"), 0, false)
			want = []msg{{topic: "lampgw/debug/marker", payload: "end"}}
		}
		// rx and tx are published by the reader and the writer: each
		// direction is in order, not the two together.
		byTopic := func(ms []msg) map[string][]string {
			m := make(map[string][]string)
			for _, x := range ms {
				m[x.topic] = append(m[x.topic], x.payload)
			}
			return m
		}
		var gotMsgs []msg
		for range want {
			select {
			case m := <-got:
				gotMsgs = append(gotMsgs, m)
			case <-time.After(wait):
				t.Fatalf("mirror %v: got %v, want %v", on, gotMsgs, want)
			}
		}
		if g, w := byTopic(gotMsgs), byTopic(want); !reflect.DeepEqual(g, w) {
			t.Errorf("mirror %v:\n got %v\nwant %v", on, g, w)
		}
	}
}
