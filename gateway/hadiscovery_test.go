package gateway_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/hadiscovery"
)

// The configs as the integration docs define their fields (light.mqtt,
// Template schema; sensor.mqtt; binary_sensor.mqtt), written out in
// full: ID, NAME and SCALE stand for the lamp's id, device name and
// brightness_max, AVAILABILITY and DEVICE for the blocks every lamp
// entity shares.
const (
	haWantLight = `{
		"name": null,
		"unique_id": "lampgw_ID_light",
		"schema": "template",
		"command_topic": "lamp/ID/set",
		"state_topic": "lamp/ID/state",
		"command_on_template": "{\"power\":\"on\"{% if brightness is defined %},\"brightness\":{{ (brightness * SCALE / 255) | round | int }}{% endif %}}",
		"command_off_template": "{\"power\":\"off\"}",
		"state_template": "{% if value_json.power is defined %}{{ value_json.power }}{% elif value_json.brightness is defined %}{{ 'on' if value_json.brightness > 0 else 'off' }}{% else %}None{% endif %}",
		"brightness_template": "{{ ((value_json.brightness | default(0)) * 255 / SCALE) | round | int }}",
		AVAILABILITY, DEVICE}`
	haWantSensor = `{
		"name": "Ambient light",
		"unique_id": "lampgw_ID_ambient",
		"state_topic": "lamp/ID/ambient",
		"state_class": "measurement",
		AVAILABILITY, DEVICE}`
	haWantAvailability = `"availability": [
			{"topic": "lamp/ID/availability", "payload_available": "online", "payload_not_available": "offline"},
			{"topic": "lampgw/status", "payload_available": "online", "payload_not_available": "offline"}],
		"availability_mode": "all"`
	haWantDevice = `"device": {"identifiers": ["lampgw_ID"], "name": "NAME", "manufacturer": "lampgw",
			"model": "legacy lamp", "via_device": "lampgw"},
		"origin": {"name": "lampgw"}`
	haWantGateway = `{
		"name": "Status",
		"unique_id": "lampgw_status",
		"state_topic": "lampgw/status",
		"payload_on": "online",
		"payload_off": "offline",
		"device_class": "connectivity",
		"entity_category": "diagnostic",
		"device": {"identifiers": ["lampgw"], "name": "lampgw", "manufacturer": "lampgw", "model": "lamp gateway"},
		"origin": {"name": "lampgw"}}`
)

// haCheck fails unless payload is the JSON document want, field by field
// and with no other field.
func haCheck(t *testing.T, topic, payload, want string) {
	t.Helper()
	var got, w any
	if err := json.Unmarshal([]byte(payload), &got); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", topic, payload, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("the test's own %s is not JSON: %v\n%s", topic, err, want)
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("%s:\ngot  %v\nwant %v", topic, got, w)
	}
}

// haWant fills doc in for lamp id.
func haWant(doc, id, name string, scale int) string {
	doc = strings.NewReplacer("AVAILABILITY", haWantAvailability, "DEVICE", haWantDevice).Replace(doc)
	return strings.NewReplacer("ID", id, "NAME", name, "SCALE", strconv.Itoa(scale)).Replace(doc)
}

// haCollect waits for a message on each of topics, which may come in any
// order, and returns the first payload of each. Messages on other topics
// stay for expect.
func (a *app) haCollect(topics ...string) map[string]string {
	a.t.Helper()
	got := make(map[string]string)
	var others []message
	deadline := time.After(wait)
	for len(got) < len(topics) {
		var m message
		if len(a.early) > 0 {
			m, a.early = a.early[0], a.early[1:]
		} else {
			select {
			case m = <-a.msgs:
			case <-deadline:
				a.t.Fatalf("no message on each of %v within %v; got %v and %v", topics, wait, got, others)
			}
		}
		if _, dup := got[m.topic]; !dup && slices.Contains(topics, m.topic) {
			got[m.topic] = m.payload
		} else {
			others = append(others, m)
		}
	}
	a.early = append(others, a.early...)
	return got
}

// haExpectLamp waits for lamp id's light and sensor configs and checks
// every field of both.
func (a *app) haExpectLamp(id, name string, scale int) {
	a.t.Helper()
	lt, st := hadiscovery.LightTopic("homeassistant", id), hadiscovery.SensorTopic("homeassistant", id)
	got := a.haCollect(lt, st)
	haCheck(a.t, lt, got[lt], haWant(haWantLight, id, name, scale))
	haCheck(a.t, st, got[st], haWant(haWantSensor, id, name, scale))
}

// haExpectGateway checks the gateway's connectivity sensor.
func (a *app) haExpectGateway() {
	a.t.Helper()
	topic := hadiscovery.GatewayTopic("homeassistant")
	haCheck(a.t, topic, a.haCollect(topic)[topic], haWantGateway)
}

// haRetained returns the retained configs a client subscribing now gets,
// by topic.
func haRetained(t *testing.T, addrs gateway.Addrs) map[string]string {
	t.Helper()
	got := make(map[string]string)
	for _, m := range newApp(t, addrs.MQTT, "homeassistant/#").early {
		if !m.retained {
			t.Fatalf("%s %q: replayed without the retain flag", m.topic, m.payload)
		}
		got[m.topic] = m.payload
	}
	return got
}

func withHA(opts *gateway.Options) {
	opts.HADiscovery = true
	opts.LampMaxRate = -1 // commands written at once: a test reads each before the next
}

func TestHADiscoveryHelloLamp(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "", withHA)
	a := newApp(t, addrs.MQTT, "homeassistant/#")
	a.haExpectGateway()

	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO kitchen\n")
	// No devices file entry: named after its id, the default 0..1023.
	a.haExpectLamp("kitchen", "kitchen", 1023)

	// Retained: Home Assistant finds them whenever it subscribes.
	got := haRetained(t, addrs)
	for _, topic := range []string{
		hadiscovery.LightTopic("homeassistant", "kitchen"),
		hadiscovery.SensorTopic("homeassistant", "kitchen"),
		hadiscovery.GatewayTopic("homeassistant"),
	} {
		if got[topic] == "" {
			t.Errorf("%s: not retained (retained: %v)", topic, got)
		}
	}
}

func TestHADiscoveryDevicesFile(t *testing.T) {
	// esp waits for the gateway to dial it, but is down for now.
	esp := newESP(t)
	esp.ln.Close()
	file := `
devices:
  - id: porch
    name: Porch lamp
    match: 192.0.2.7       # never connects here
    brightness_max: 255
  - id: esp
    dial: ` + esp.addr + "\n"
	g, addrs, path := startWithDevices(t, file, withHA)
	a := newApp(t, addrs.MQTT, "homeassistant/#", "lamp/porch/availability", "lamp/esp/availability")
	// Declared lamps get configs before they ever connect, with the
	// file's name and brightness_max.
	a.haExpectLamp("porch", "Porch lamp", 255)
	a.haExpectLamp("esp", "esp", 1023)
	a.expectPayload("lamp/porch/availability", "offline")
	esp.restart()
	esp.accept()
	a.expectEventually("lamp/esp/availability", "online")

	// A new name and scale on reload: the configs follow.
	writeFile(t, path, strings.NewReplacer("Porch lamp", "Front porch", "brightness_max: 255", "brightness_max: 100").Replace(file))
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	a.haExpectLamp("porch", "Front porch", 100)

	// Removed: both configs cleared, and no longer retained (esp's
	// neither).
	writeFile(t, path, "devices: []\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	cleared := a.haCollect(hadiscovery.LightTopic("homeassistant", "porch"), hadiscovery.SensorTopic("homeassistant", "porch"))
	for topic, payload := range cleared {
		if payload != "" {
			t.Errorf("%s: got %q, want it cleared", topic, payload)
		}
	}
	for topic := range haRetained(t, addrs) {
		if topic != hadiscovery.GatewayTopic("homeassistant") {
			t.Errorf("%s: still retained after removal", topic)
		}
	}
}

func TestHADiscoveryBirthRepublishes(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "", withHA)
	a := newApp(t, addrs.MQTT, "homeassistant/#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO hall\n")
	a.haExpectLamp("hall", "hall", 1023)

	// Home Assistant's birth message, as it sends it.
	a.publish("homeassistant/status", "online", false)
	a.haExpectGateway()
	a.haExpectLamp("hall", "hall", 1023)
}

func TestHADiscoveryOff(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "devices:\n  - id: porch\n", func(o *gateway.Options) {
		withHA(o)
		o.HADiscovery = false
	})
	a := newApp(t, addrs.MQTT, "#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO kitchen\n")
	a.expectPayload("lamp/kitchen/availability", "online")
	a.publish("homeassistant/status", "online", false)
	a.expectPayload("homeassistant/status", "online")
	l.send("ambient=5\n")
	before := a.expectPayload("lamp/kitchen/ambient", "5")
	for _, m := range append(a.early, before...) {
		if strings.HasPrefix(m.topic, "homeassistant/") && m.topic != "homeassistant/status" {
			t.Errorf("published with discovery off: %s %q", m.topic, m.payload)
		}
	}
	if got := haRetained(t, addrs); len(got) != 0 {
		t.Errorf("retained under homeassistant/ with discovery off: %v", got)
	}
}

// TestHACommandsReachTheLamp publishes what Home Assistant publishes for
// the light's on, off and brightness commands: the command templates'
// output, which hadiscovery's TestTemplatesRenderInJinja renders with
// Jinja2 to exactly these payloads. Each must reach the lamp's socket as
// one frame.
func TestHACommandsReachTheLamp(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "devices:\n  - id: eight\n    brightness_max: 255\n", withHA)
	a := newApp(t, addrs.MQTT, "homeassistant/#", "lamp/+/error")
	lamps := map[string]*lamp{}
	for _, id := range []string{"ten", "eight"} {
		lamps[id] = dialLamp(t, addrs.Bridge)
		lamps[id].send("HELLO " + id + "\n")
	}
	a.haExpectLamp("ten", "ten", 1023)
	a.haExpectLamp("eight", "eight", 255)

	for _, tc := range []struct {
		name, id, payload, frame string
	}{
		{"on", "ten", `{"power":"on"}`, "power=on"},
		{"on at 128 of 255", "ten", `{"power":"on","brightness":514}`, "power=on brightness=514"},
		{"on at full", "ten", `{"power":"on","brightness":1023}`, "power=on brightness=1023"},
		{"on at 1", "ten", `{"power":"on","brightness":4}`, "power=on brightness=4"},
		{"off", "ten", `{"power":"off"}`, "power=off"},
		{"on at 128, 8-bit lamp", "eight", `{"power":"on","brightness":128}`, "power=on brightness=128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The command topic is the one the config names.
			a.publish("lamp/"+tc.id+"/set", tc.payload, false)
			lamps[tc.id].expectLine(tc.frame)
		})
	}

	// What the JSON schema would send: "state" is a reserved level, so
	// the command is refused and nothing reaches the lamp; the next
	// frame on its socket is the next command's.
	a.publish("lamp/ten/set", `{"state":"ON","brightness":128}`, false)
	if got, _ := a.expect("lamp/ten/error"); !strings.Contains(got, `"error":"state`) {
		t.Errorf("lamp/ten/error: got %s, want the state key refused", got)
	}
	a.publish("lamp/ten/set", `{"power":"on"}`, false)
	lamps["ten"].expectLine("power=on")
}

func TestHADiscoveryPrefix(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "", func(o *gateway.Options) {
		withHA(o)
		o.HAPrefix = "home/ha"
	})
	a := newApp(t, addrs.MQTT, "home/ha/#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO hall\n")
	configs := []string{hadiscovery.LightTopic("home/ha", "hall"), hadiscovery.SensorTopic("home/ha", "hall")}
	a.haCollect(configs...)
	// The birth message under the same prefix.
	a.publish("home/ha/status", "online", false)
	a.haCollect(configs...)

	for _, prefix := range []string{"lamp", "lamp/ha", "lampgw", "ha/+"} {
		_, err := gateway.New(gateway.Options{HADiscovery: true, HAPrefix: prefix})
		var se *gateway.SettingError
		if !errors.As(err, &se) || se.Setting != "ha-prefix" || !errors.Is(err, hadiscovery.ErrBadPrefix) {
			t.Errorf("New with ha-prefix %q: got %v, want a SettingError for ha-prefix", prefix, err)
		}
	}
	// Off, the prefix is not used, so not checked either.
	if _, err := gateway.New(gateway.Options{HAPrefix: "lamp"}); err != nil {
		t.Errorf("New with discovery off and ha-prefix lamp: %v", err)
	}
}
