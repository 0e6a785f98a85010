package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
)

func TestMetricsFromSources(t *testing.T) {
	m := New(Sources{
		Bridge: func() bridge.Stats {
			return bridge.Stats{Connections: 3, FramesOK: 10, FramesPartial: 2, BadFrames: 1, CommandFrames: 4, ErrorLines: 3,
				Disconnects: map[string]uint64{bridge.EndSlow: 1}, RefusedPerAddr: 5, AuthFailures: 6}
		},
		Acks:   func() map[devices.AckStatus]uint64 { return map[devices.AckStatus]uint64{devices.Confirmed: 7} },
		Lamps:  func() int { return 2 },
		Broker: func() broker.Info { return broker.Info{ClientsConnected: 1, MessagesSent: 8, MessagesDropped: 9} },
	})
	m.ObserveReport(40 * time.Microsecond)
	m.ObserveReport(2 * time.Millisecond)

	want := `
# HELP lampgw_bridge_lamps_connected Lamps identified and connected now.
# TYPE lampgw_bridge_lamps_connected gauge
lampgw_bridge_lamps_connected 2
# HELP lampgw_bridge_frames_received_total Frames from lamps, by result: ok, partial (some keys refused), bad (nothing usable).
# TYPE lampgw_bridge_frames_received_total counter
lampgw_bridge_frames_received_total{result="bad"} 1
lampgw_bridge_frames_received_total{result="ok"} 10
lampgw_bridge_frames_received_total{result="partial"} 2
# HELP lampgw_commands_acks_total Command progress steps, by status; confirmed, unconfirmed, superseded, expired and rejected are final.
# TYPE lampgw_commands_acks_total counter
lampgw_commands_acks_total{status="confirmed"} 7
lampgw_commands_acks_total{status="expired"} 0
lampgw_commands_acks_total{status="queued"} 0
lampgw_commands_acks_total{status="rejected"} 0
lampgw_commands_acks_total{status="superseded"} 0
lampgw_commands_acks_total{status="unconfirmed"} 0
lampgw_commands_acks_total{status="written"} 0
# HELP lampgw_mqtt_messages_dropped_total Messages dropped for MQTT clients too slow to take them.
# TYPE lampgw_mqtt_messages_dropped_total counter
lampgw_mqtt_messages_dropped_total 9
`
	names := []string{"lampgw_bridge_lamps_connected", "lampgw_bridge_frames_received_total",
		"lampgw_commands_acks_total", "lampgw_mqtt_messages_dropped_total"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() == "lampgw_bridge_report_publish_seconds" {
			count = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if count != 2 {
		t.Errorf("report latency samples: got %d, want 2", count)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "lampgw_") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}

func TestUpstreamMetrics(t *testing.T) {
	m := New(Sources{Upstream: func() Upstream { return Upstream{Connected: true, Buffered: 3, BufferDropped: 4} }})
	want := `
# HELP lampgw_upstream_connected 1 while the connection to the external broker (--broker-url) is up.
# TYPE lampgw_upstream_connected gauge
lampgw_upstream_connected 1
# HELP lampgw_upstream_buffered_messages Publishes waiting for the external broker to be reachable again.
# TYPE lampgw_upstream_buffered_messages gauge
lampgw_upstream_buffered_messages 3
# HELP lampgw_upstream_buffer_dropped_total Publishes dropped while the external broker was unreachable and the buffer full.
# TYPE lampgw_upstream_buffer_dropped_total counter
lampgw_upstream_buffer_dropped_total 4
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "lampgw_upstream_connected",
		"lampgw_upstream_buffered_messages", "lampgw_upstream_buffer_dropped_total"); err != nil {
		t.Error(err)
	}
}

func TestNilSourcesLeaveMetricsOut(t *testing.T) {
	m := New(Sources{})
	if n, err := testutil.GatherAndCount(m.reg, "lampgw_bridge_lamps_connected", "lampgw_mqtt_clients_connected", "lampgw_upstream_connected"); err != nil || n != 0 {
		t.Errorf("got %d series, %v; want none", n, err)
	}
}
