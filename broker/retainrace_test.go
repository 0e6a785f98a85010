package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestRetainedReplayWhilePublishing subscribes with a wildcard, over
// and over, while retained messages are published: mochi v2.7.9 read a
// topic node's retained path without the lock its writer holds, which
// the race detector reports here (mochi-mqtt/server#200); the patched
// copy in third_party takes the lock. Without -race it checks that every
// message is of a topic that was published.
func TestRetainedReplayWhilePublishing(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	c := connectTCP(t, b.MQTTAddr().String(), "replayer")
	defer c.Disconnect(0)

	const lamps = 20
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bounded, and stopped as soon as the subscriber is done.
		for i := 0; i < 1_000_000 && !stop.Load(); i++ {
			topic := fmt.Sprintf("lamp/l%d/state", i%lamps)
			if err := b.Bus().Publish(topic, []byte(fmt.Sprint(i)), 0, true); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var bad atomic.Value
	for range 30 {
		// The handler never blocks: paho's router must keep reading.
		wait(t, "subscribe", c.Subscribe("lamp/+/+", 0, func(_ paho.Client, m paho.Message) {
			var n int
			if _, err := fmt.Sscanf(m.Topic(), "lamp/l%d/state", &n); err != nil || n >= lamps {
				bad.Store(m.Topic())
			}
		}))
		wait(t, "unsubscribe", c.Unsubscribe("lamp/+/+"))
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Errorf("a message on %q, a topic nobody published", v)
	}
}
