package soaktest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/gateway"
)

// TestAckBurst: an app switches 250 lamps on at once, each command with
// a rid, as an "all on" button does, and must get every ack (written and
// confirmed for each). With broker.DefaultMaxClientWritesPending at 64,
// the acks come faster than mochi writes them to the app and it drops a
// third to a half of them (measured: 500 lamps, 433 of 1000 acks dropped
// under -race, 252 without); with 256 or more none are dropped.
func TestAckBurst(t *testing.T) {
	leakCheck(t)
	const n = 250
	_, addrs := startGateway(t, func(o *gateway.Options) { o.MaxLampsPerAddr = 2 * n })
	sys := watchSys(t, addrs.MQTT)
	var acks atomic.Int64
	app := connectMQTT(t, addrs.MQTT, "all-on", nil)
	subscribe(t, app, map[string]byte{"lamp/+/ack": 1}, func(paho.Client, paho.Message) { acks.Add(1) })
	var echoes sync.WaitGroup
	t.Cleanup(echoes.Wait) // after the lamps' sockets close
	for i := range n {
		l := dialLamp(t, "", addrs.Bridge)
		l.send(t, fmt.Sprintf("HELLO on-%d\npower=off\n", i))
		// The lamp applies the command and reports it: it echoes it.
		echoes.Go(func() {
			if line, err := l.r.ReadString('\n'); err == nil {
				l.conn.Write([]byte(line))
			}
		})
	}
	until(t, wait, fmt.Sprintf("%d lamps online", n), func() bool { return sys.get("clients/connected") > 0 })
	for i := range n {
		app.Publish(fmt.Sprintf("lamp/on-%d/set", i), 1, false, fmt.Sprintf(`{"power":"on","rid":"on-%d"}`, i))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(wait); acks.Load() < 2*n && time.Now().Before(deadline); {
			<-tick.C
		}
	}()
	<-done
	if got := acks.Load(); got < 2*n {
		sys.fresh(t, 3*time.Second)
		t.Fatalf("got %d of %d acks; the broker dropped %d messages for slow clients", got, 2*n, sys.get("messages/dropped"))
	}
}
