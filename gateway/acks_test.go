package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/testwait"
)

// ack is lamp/<id>/ack's payload.
type ack struct {
	RID    string          `json:"rid"`
	Key    string          `json:"key"`
	Value  json.RawMessage `json:"value"`
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Time   time.Time       `json:"time"`
}

// expectAck waits for the next ack on topic and checks it.
func (a *app) expectAck(topic, rid, key, value, status string) ack {
	a.t.Helper()
	payload, _ := a.expect(topic)
	var got ack
	if err := json.Unmarshal([]byte(payload), &got); err != nil {
		a.t.Fatalf("%s: %q is not an ack: %v", topic, payload, err)
	}
	if got.RID != rid || got.Key != key || string(got.Value) != value || got.Status != status || got.Time.IsZero() {
		a.t.Fatalf("%s: got %s, want rid %q key %q value %s status %s and a time", topic, payload, rid, key, value, status)
	}
	return got
}

func TestAcksEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name, hello, report, frame, six string
	}{
		{"text lamp", "HELLO kitchen", "brightness=700 mode=manual", "brightness=700 mode=manual", "brightness=6"},
		{"JSON lamp", `{"id":"kitchen"}`, `{"brightness":700,"mode":"manual"}`, `{"brightness":700,"mode":"manual"}`, `{"brightness":6}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addrs := startWith(t, gateway.Options{
				MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", Logger: testLogger(t),
				ConfirmTimeout: 200 * time.Millisecond,
			})
			a := newApp(t, addrs.MQTT, "lamp/kitchen/ack", "lamp/kitchen/error")

			// Offline: queued, and written when the lamp connects.
			a.publish("lamp/kitchen/set", `{"brightness":700,"mode":"manual","rid":"r1"}`, false)
			a.expectAck("lamp/kitchen/ack", "r1", "brightness", "700", "queued")
			a.expectAck("lamp/kitchen/ack", "r1", "mode", `"manual"`, "queued")
			l := dialLamp(t, addrs.Bridge)
			l.send(tc.hello + "\n")
			// The first frame decides the dialect, so the lamp gets the
			// command in its own.
			l.expectLine(tc.frame)
			a.expectAck("lamp/kitchen/ack", "r1", "brightness", "700", "written")
			a.expectAck("lamp/kitchen/ack", "r1", "mode", `"manual"`, "written")
			// Confirmed by the lamp's own report, key by key.
			l.send(tc.report + "\n")
			a.expectAck("lamp/kitchen/ack", "r1", "brightness", "700", "confirmed")
			a.expectAck("lamp/kitchen/ack", "r1", "mode", `"manual"`, "confirmed")

			// Online, not confirmed: unconfirmed after --confirm-timeout.
			a.publish("lamp/kitchen/set", `{"brightness":5,"rid":"r2"}`, false)
			l.line()
			a.expectAck("lamp/kitchen/ack", "r2", "brightness", "5", "written")
			a.expectAck("lamp/kitchen/ack", "r2", "brightness", "5", "unconfirmed")

			// Invalid: rejected with the reason, and the error topic as before.
			a.publish("lamp/kitchen/set", `{"brightness":5000,"rid":"r3"}`, false)
			if got, _ := a.expect("lamp/kitchen/error"); !strings.Contains(got, "out of range") {
				t.Errorf("error: got %s", got)
			}
			if got := a.expectAck("lamp/kitchen/ack", "r3", "", "", "rejected"); got.Error != "brightness: out of range 0..1023" {
				t.Errorf("rejected ack error: got %q", got.Error)
			}

			// Without a rid: no ack at all (the next ack is r4's).
			a.publish("lamp/kitchen/brightness/set", "6", false)
			l.expectLine(tc.six)
			a.publish("lamp/kitchen/set", `{"power":"on","rid":"r4"}`, false)
			a.expectAck("lamp/kitchen/ack", "r4", "power", `"on"`, "written")
		})
	}
}

func TestPacingCoalescesADraggedSlider(t *testing.T) {
	g, addrs := startWith(t, gateway.Options{
		MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", Logger: testLogger(t),
		LampMaxRate: 1, // one frame a second: the whole drag fits in one gap
	})
	a := newApp(t, addrs.MQTT, "lamp/kitchen/ack")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO kitchen\n")
	testwait.Until(t, "kitchen online", func() bool { s, _ := g.Registry().Get("kitchen"); return s.Online })
	a.publish("lamp/kitchen/set", `{"brightness":0,"rid":"first"}`, false)
	a.expectAck("lamp/kitchen/ack", "first", "brightness", "0", "written")
	l.expectLine("brightness=0")

	const n = 20
	for i := 1; i <= n; i++ {
		a.publish("lamp/kitchen/set", fmt.Sprintf(`{"brightness":%d,"rid":"drag%d"}`, i*10, i), false)
	}
	// The lamp gets the last value, once; every other step is superseded.
	l.expectLine(fmt.Sprintf("brightness=%d", n*10))
	superseded := 0
	for {
		payload, _ := a.expect("lamp/kitchen/ack")
		var got ack
		json.Unmarshal([]byte(payload), &got)
		if got.Status == "superseded" {
			superseded++
			continue
		}
		if got.RID == fmt.Sprintf("drag%d", n) && got.Status == "written" {
			break
		}
		if got.Status != "unconfirmed" { // "first", replaced on the wire
			t.Fatalf("unexpected ack %s", payload)
		}
	}
	if superseded != n-1 {
		t.Errorf("superseded: got %d, want %d", superseded, n-1)
	}
}
