package gateway

import (
	"net/http"

	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/metrics"
)

// newMetrics makes the gateway's metrics, reading its parts at scrape time.
func (g *Gateway) newMetrics() *metrics.Metrics {
	src := metrics.Sources{
		Bridge: g.BridgeStats,
		Acks: func() map[devices.AckStatus]uint64 {
			r := g.Registry()
			if r == nil {
				return nil
			}
			counts := r.AckCounts()
			// Invalid commands never reach the registry.
			counts[devices.Rejected] = g.BridgeStats().CommandsRejected
			return counts
		},
		Lamps: func() int {
			if r := g.Registry(); r != nil {
				return r.Online()
			}
			return 0
		},
		Broker: func() broker.Info {
			g.mu.Lock()
			b := g.broker
			g.mu.Unlock()
			if b == nil {
				return broker.Info{}
			}
			return b.Info()
		},
	}
	if ext := g.ext; ext != nil {
		// Cluster mode: no broker of ours to count, but the way to one.
		src.Broker = nil
		src.Upstream = func() metrics.Upstream {
			return metrics.Upstream{Connected: ext.Connected(), Buffered: ext.Buffered(), BufferDropped: ext.BufferDropped()}
		}
	}
	return metrics.New(src)
}

// ready reports whether the gateway serves: started, not shutting down,
// and every part up. It is /readyz.
func (g *Gateway) ready() (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.started || g.bus == nil || g.bridge == nil:
		return false, "starting"
	case g.stopping:
		return false, "shutting down"
	case g.ext != nil && !g.ext.Connected():
		// A load balancer should send lamps to an instance that can
		// reach the broker.
		return false, "broker unreachable"
	}
	return true, "ok"
}

func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ok, why := g.ready()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write([]byte(why + "\n"))
}
