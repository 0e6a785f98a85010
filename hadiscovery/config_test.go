package hadiscovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestCheckPrefix(t *testing.T) {
	tests := []struct {
		name, ha, lamp string
		ok             bool
	}{
		{"default", "homeassistant", "lamp", true},
		{"two levels", "home/ha", "home/lamp", true},
		{"lamp prefix is a longer name", "lamp", "lamps", true},
		{"empty", "", "lamp", false},
		{"wildcard", "home/+", "lamp", false},
		{"dollar", "$ha", "lamp", false},
		{"empty level", "ha//x", "lamp", false},
		{"equal to the lamp prefix", "lamp", "lamp", false},
		{"under the lamp prefix", "lamp/ha", "lamp", false},
		{"above the lamp prefix", "home", "home/lamp", false},
		{"lampgw", "lampgw", "lamp", false},
		{"under lampgw", "lampgw/ha", "lamp", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPrefix(tc.ha, tc.lamp)
			if got := err == nil; got != tc.ok {
				t.Fatalf("CheckPrefix(%q, %q): got %v, want ok %v", tc.ha, tc.lamp, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadPrefix) {
				t.Fatalf("CheckPrefix(%q, %q): got %v, want ErrBadPrefix", tc.ha, tc.lamp, err)
			}
		})
	}
}

func TestConfigTopicsAndIDs(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{LightTopic("homeassistant", "kitchen"), "homeassistant/light/lampgw_kitchen_light/config"},
		{SensorTopic("homeassistant", "kitchen"), "homeassistant/sensor/lampgw_kitchen_ambient/config"},
		{GatewayTopic("home/ha"), "home/ha/binary_sensor/lampgw_status/config"},
		{StatusTopic("homeassistant"), "homeassistant/status"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestLightConfigNameAndScale(t *testing.T) {
	for _, tc := range []struct {
		name       string
		info       Info
		deviceName string
		onTemplate string
	}{
		{"no entry", Info{}, "k-1", `{"power":"on"{% if brightness is defined %},"brightness":{{ (brightness * 1023 / 255) | round | int }}{% endif %}}`},
		{"named, 8-bit", Info{Name: "Kitchen lamp", BrightnessMax: 255}, "Kitchen lamp", `{"power":"on"{% if brightness is defined %},"brightness":{{ (brightness * 255 / 255) | round | int }}{% endif %}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l lightConfig
			if err := json.Unmarshal(LightConfig("home/lamps", "k-1", tc.info), &l); err != nil {
				t.Fatal(err)
			}
			if l.Device.Name != tc.deviceName {
				t.Errorf("device name: got %q, want %q", l.Device.Name, tc.deviceName)
			}
			if l.CommandOnTemplate != tc.onTemplate {
				t.Errorf("command_on_template: got %s, want %s", l.CommandOnTemplate, tc.onTemplate)
			}
			if l.CommandTopic != "home/lamps/k-1/set" || l.StateTopic != "home/lamps/k-1/state" {
				t.Errorf("topics: got %q and %q, want them under home/lamps/k-1", l.CommandTopic, l.StateTopic)
			}
			if l.Name != nil {
				t.Errorf("name: got %q, want null (the device's main feature)", *l.Name)
			}
		})
	}
}

// The cases below are what Home Assistant renders from the templates:
// command templates with the variables it passes to command_on_template
// and command_off_template, the others with value_json, the state JSON
// (light.mqtt, Template schema). gateway/hadiscovery_test.go publishes the
// same command payloads and checks the frame each puts on a lamp's socket.
var renderCases = []struct {
	name     string
	template func(scale int) string
	scale    int
	vars     map[string]any // command templates
	state    string         // the others: the payload of lamp/<id>/state
	want     string
}{
	{"on", commandOnTemplate, 1023, map[string]any{"state": true}, "", `{"power":"on"}`},
	{"on at 128 of 255, lamp 1023", commandOnTemplate, 1023, map[string]any{"state": true, "brightness": 128}, "", `{"power":"on","brightness":514}`},
	{"on at full, lamp 1023", commandOnTemplate, 1023, map[string]any{"state": true, "brightness": 255}, "", `{"power":"on","brightness":1023}`},
	{"on at 1, lamp 1023", commandOnTemplate, 1023, map[string]any{"state": true, "brightness": 1}, "", `{"power":"on","brightness":4}`},
	{"on at 128, lamp 255", commandOnTemplate, 255, map[string]any{"state": true, "brightness": 128}, "", `{"power":"on","brightness":128}`},
	{"off", func(int) string { return commandOffTemplate }, 1023, map[string]any{"state": false}, "", `{"power":"off"}`},

	{"state: power on", func(int) string { return stateTemplate }, 1023, nil, `{"brightness":514,"mode":"manual","power":"on"}`, "on"},
	{"state: power off, bright", func(int) string { return stateTemplate }, 1023, nil, `{"brightness":700,"power":"off"}`, "off"},
	{"state: no power, bright", func(int) string { return stateTemplate }, 1023, nil, `{"brightness":1}`, "on"},
	{"state: no power, dark", func(int) string { return stateTemplate }, 1023, nil, `{"brightness":0}`, "off"},
	{"state: neither", func(int) string { return stateTemplate }, 1023, nil, `{"ambient":830}`, "None"},

	{"brightness 514 of 1023", brightnessTemplate, 1023, nil, `{"brightness":514,"power":"on"}`, "128"},
	{"brightness full", brightnessTemplate, 1023, nil, `{"brightness":1023}`, "255"},
	{"brightness 128 of 255", brightnessTemplate, 255, nil, `{"brightness":128}`, "128"},
	{"brightness missing", brightnessTemplate, 1023, nil, `{"ambient":830}`, "0"},
}

// renderScript renders Jinja templates as Home Assistant does: in a
// sandboxed environment, command templates with their variables,
// state templates with value and value_json, stripped of surrounding
// whitespace.
const renderScript = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
out = []
for c in json.load(sys.stdin):
    v = dict(c["vars"] or {})
    if c["state"]:
        v["value"] = c["state"]
        v["value_json"] = json.loads(c["state"])
    out.append(env.from_string(c["template"]).render(**v).strip())
json.dump(out, sys.stdout)
`

// TestTemplatesRenderInJinja renders the templates with Jinja2, the
// engine Home Assistant's templates are, through python3. It skips where
// either is missing, except in CI (the Debian image has both).
func TestTemplatesRenderInJinja(t *testing.T) {
	if err := exec.Command("python3", "-c", "import jinja2").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 with jinja2 is needed to render the templates: %v", err)
		}
		t.Skipf("python3 with jinja2 not available: %v", err)
	}
	type job struct {
		Template string         `json:"template"`
		Vars     map[string]any `json:"vars"`
		State    string         `json:"state"`
	}
	var jobs []job
	for _, tc := range renderCases {
		jobs = append(jobs, job{tc.template(tc.scale), tc.vars, tc.state})
	}
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "-c", renderScript)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(renderCases) {
		t.Fatalf("python3 printed %q: %v", out, err)
	}
	for i, tc := range renderCases {
		if got[i] != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got[i], tc.want)
		}
	}
}
