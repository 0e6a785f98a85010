package broker

import (
	"context"
	"reflect"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Drain waits until every network client has been sent what is queued for
// it, or until ctx ends. Call it before Close when the last publishes
// matter (lamps going offline, lampgw/status): mochi's Close stops each
// client by closing its connection (clients.go, Client.Stop) and drops
// whatever its WriteLoop had not written yet.
//
// mochi exposes no queue length, so Drain reads the length of
// ClientState.outbound through reflection; outboundLen reports false if
// a mochi upgrade renames it, and TestDrainSeesMochiQueue then fails.
func (b *Broker) Drain(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		for _, cl := range b.srv.Clients.GetAll() {
			if n, ok := outboundLen(cl); ok && n > 0 && !cl.Closed() {
				busy = true
				break
			}
		}
		if !busy {
			// A packet the WriteLoop has taken off the queue is written
			// under the client's lock (Client.WritePacket); taking the
			// lock waits for that write.
			for _, cl := range b.srv.Clients.GetAll() {
				cl.Lock()
				cl.Unlock() //nolint:staticcheck // an empty critical section is the point
			}
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// outboundLen is the number of packets waiting in cl's write queue.
func outboundLen(cl *mqtt.Client) (int, bool) {
	f := reflect.ValueOf(&cl.State).Elem().FieldByName("outbound")
	if !f.IsValid() || f.Kind() != reflect.Chan {
		return 0, false
	}
	return f.Len(), true
}
