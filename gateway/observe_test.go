package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/gateway"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: wait}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsAndReadyz(t *testing.T) {
	_, addrs := startWith(t, gateway.Options{
		MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: testLogger(t),
	})
	base := "http://" + addrs.HTTP.String()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz: got %d %q, want 200 ok", code, body)
	}

	a := newApp(t, addrs.MQTT, "lamp/#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO kitchen\nbrightness=5\njunk\n")
	a.expectPayload("lamp/kitchen/brightness", "5")
	l.expectLine("ERR malformed pair, want key=value")
	a.publish("lamp/kitchen/set", `{"brightness":6,"rid":"m"}`, false)
	l.expectLine("brightness=6")
	a.expectAck("lamp/kitchen/ack", "m", "brightness", "6", "written")
	a.publish("lamp/kitchen/set", `{"brightness":6000,"rid":"r"}`, false)
	a.expectAck("lamp/kitchen/ack", "r", "", "", "rejected")

	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		"lampgw_bridge_lamps_connected 1\n",
		`lampgw_bridge_frames_received_total{result="ok"} 2` + "\n", // HELLO and the report
		`lampgw_bridge_frames_received_total{result="bad"} 1` + "\n",
		`lampgw_bridge_frames_sent_total{kind="command"} 1` + "\n",
		`lampgw_commands_acks_total{status="written"} 1` + "\n",
		`lampgw_commands_acks_total{status="rejected"} 1` + "\n",
		"lampgw_bridge_report_publish_seconds_count 1\n",
		"lampgw_mqtt_clients_connected 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "lampgw_") && strings.Contains(line, "kitchen") {
			t.Errorf("a lamp id as a label: %s", line)
		}
	}
}
