package hadiscovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// DefaultPrefix is Home Assistant's default discovery prefix
// (https://www.home-assistant.io/integrations/mqtt/#discovery-options).
const DefaultPrefix = "homeassistant"

// Names that tie the configs together. They are fixed: Home Assistant
// talks to one broker, and so to one lampgw.
const (
	// gatewayID identifies the gateway device; every lamp's device names
	// it as via_device.
	gatewayID = "lampgw"
	// idPrefix starts every unique_id and lamp device identifier, so that
	// lampgw's ids cannot collide with another integration's.
	idPrefix = "lampgw_"
)

// Components of the discovery topics
// (https://www.home-assistant.io/integrations/mqtt/#discovery-topic).
const (
	componentLight        = "light"
	componentSensor       = "sensor"
	componentBinarySensor = "binary_sensor"
)

// Info is what the devices file says about a lamp. The zero value means
// nothing: the lamp is named after its id and takes brightness
// 0..devices.DefaultBrightnessMax.
type Info struct {
	Name          string
	BrightnessMax int
}

// CheckPrefix returns an error wrapping ErrBadPrefix unless haPrefix is
// one or more topic levels that topics.CheckPrefix accepts and that
// neither contain nor lie inside the lamp prefix or lampgw/. Home
// Assistant publishes its birth message under haPrefix, and the broker
// refuses every client's publish under the lamp prefix (but commands) and
// under lampgw/.
func CheckPrefix(haPrefix, lampPrefix string) error {
	if topics.CheckPrefix(haPrefix) != nil {
		return fmt.Errorf("%w: must be topic levels without wildcards, empty levels or a leading '$'", ErrBadPrefix)
	}
	if overlaps(haPrefix, lampPrefix) {
		return fmt.Errorf("%w: must not overlap the lamp topic prefix %q", ErrBadPrefix, lampPrefix)
	}
	if gatewayRoot, _, _ := strings.Cut(topics.GatewayStatus, "/"); overlaps(haPrefix, gatewayRoot) {
		return fmt.Errorf("%w: must not overlap lampgw's own %q", ErrBadPrefix, gatewayRoot)
	}
	return nil
}

// overlaps reports whether topics under a and under b can be the same:
// a and b are equal or one is a level-wise prefix of the other.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// configTopic is <prefix>/<component>/<object_id>/config, with the
// unique_id as object_id and no node_id: "Best practice for entities
// with a unique_id is to set <object_id> to unique_id and omit the
// <node_id>" (https://www.home-assistant.io/integrations/mqtt/#discovery-topic).
func configTopic(haPrefix, component, uniqueID string) string {
	return haPrefix + "/" + component + "/" + uniqueID + "/config"
}

// LightTopic is where lamp id's light config is published.
func LightTopic(haPrefix, id string) string {
	return configTopic(haPrefix, componentLight, lightID(id))
}

// SensorTopic is where lamp id's ambient sensor config is published.
func SensorTopic(haPrefix, id string) string {
	return configTopic(haPrefix, componentSensor, sensorID(id))
}

// GatewayTopic is where the gateway's connectivity sensor is published.
func GatewayTopic(haPrefix string) string {
	return configTopic(haPrefix, componentBinarySensor, gatewayStatusID)
}

// StatusTopic is where Home Assistant publishes its birth ("online") and
// last will ("offline") messages: "By default, Home Assistant sends
// online and offline to homeassistant/status"
// (https://www.home-assistant.io/integrations/mqtt/#birth-and-last-will-messages).
func StatusTopic(haPrefix string) string { return haPrefix + "/status" }

// Unique ids, also the object_ids of the topics. Each kind has its own
// suffix, so no two lamps, and no lamp and the gateway, share one.
func lightID(id string) string  { return idPrefix + id + "_light" }
func sensorID(id string) string { return idPrefix + id + "_ambient" }

const gatewayStatusID = idPrefix + "status"

// availability is one entry of an entity's availability list
// (light.mqtt, sensor.mqtt: "availability ... payload_available,
// payload_not_available, topic").
type availability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

// device is the device block: "Information about the device this light
// is a part of to tie it into the device registry. Only works when
// unique_id is set" (light.mqtt, device).
type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	ViaDevice    string   `json:"via_device,omitempty"`
}

// origin says who published a config: "It is recommended to add
// information about the origin of MQTT entities by including the origin
// option" (mqtt, discovery payload).
type origin struct {
	Name string `json:"name"`
}

var lampgwOrigin = origin{Name: "lampgw"}

// lightConfig is a light of the template schema (light.mqtt, Template
// schema - Configuration).
type lightConfig struct {
	// Name is null: "It's allowed to set an MQTT entity's name to None
	// (use null in YAML) to mark it as the main feature of a device"
	// (mqtt, Naming of MQTT Entities). The light takes the device's name.
	Name               *string        `json:"name"`
	UniqueID           string         `json:"unique_id"`
	Schema             string         `json:"schema"`
	CommandTopic       string         `json:"command_topic"`
	StateTopic         string         `json:"state_topic"`
	CommandOnTemplate  string         `json:"command_on_template"`
	CommandOffTemplate string         `json:"command_off_template"`
	StateTemplate      string         `json:"state_template"`
	BrightnessTemplate string         `json:"brightness_template"`
	Availability       []availability `json:"availability"`
	AvailabilityMode   string         `json:"availability_mode"`
	Device             device         `json:"device"`
	Origin             origin         `json:"origin"`
}

// sensorConfig is the ambient sensor (sensor.mqtt). Ambient is the lamp's
// raw light-sensor reading, not lux, so it has no device_class or unit;
// state_class measurement keeps its history as statistics.
type sensorConfig struct {
	Name             string         `json:"name"`
	UniqueID         string         `json:"unique_id"`
	StateTopic       string         `json:"state_topic"`
	StateClass       string         `json:"state_class"`
	Availability     []availability `json:"availability"`
	AvailabilityMode string         `json:"availability_mode"`
	Device           device         `json:"device"`
	Origin           origin         `json:"origin"`
}

// gatewayConfig is the gateway's connectivity sensor (binary_sensor.mqtt):
// it makes the gateway a named device that the lamps' via_device finds,
// and shows whether lampgw runs.
type gatewayConfig struct {
	Name           string `json:"name"`
	UniqueID       string `json:"unique_id"`
	StateTopic     string `json:"state_topic"`
	PayloadOn      string `json:"payload_on"`
	PayloadOff     string `json:"payload_off"`
	DeviceClass    string `json:"device_class"`
	EntityCategory string `json:"entity_category"`
	Device         device `json:"device"`
	Origin         origin `json:"origin"`
}

// brightnessMax is the lamp's scale: info's, else the default.
func (info Info) brightnessMax() int {
	if info.BrightnessMax > 0 {
		return info.BrightnessMax
	}
	return devices.DefaultBrightnessMax
}

// lampAvailability makes a lamp available while it is connected and
// lampgw runs: availability_mode all, "payload_available must be
// received on all configured availability topics before the entity is
// marked as online" (light.mqtt, availability_mode).
func lampAvailability(prefix, id string) []availability {
	return []availability{
		{Topic: topics.Availability(prefix, id), PayloadAvailable: topics.Online, PayloadNotAvailable: topics.Offline},
		{Topic: topics.GatewayStatus, PayloadAvailable: topics.Online, PayloadNotAvailable: topics.Offline},
	}
}

func lampDevice(id string, info Info) device {
	name := info.Name
	if name == "" {
		name = id
	}
	return device{
		Identifiers:  []string{idPrefix + id},
		Name:         name,
		Manufacturer: "lampgw",
		Model:        "legacy lamp",
		ViaDevice:    gatewayID,
	}
}

// Templates of the light. Home Assistant renders them with Jinja: the
// command templates with the variables state and, when the user set one,
// brightness (0..255); the others with value_json, the parsed state JSON
// (light.mqtt, command_on_template, state_template, brightness_template).

// commandOnTemplate sends power on, and the brightness scaled from 0..255
// to 0..scale when Home Assistant gives one: one JSON command, so the lamp
// gets power and brightness in one frame, or neither.
func commandOnTemplate(scale int) string {
	return `{"power":"on"{% if brightness is defined %},"brightness":{{ (brightness * ` +
		strconv.Itoa(scale) + ` / 255) | round | int }}{% endif %}}`
}

const commandOffTemplate = `{"power":"off"}`

// stateTemplate must give "on" or "off". A lamp that reports power is
// what it says; one that only reports brightness is on while that is
// above 0; before either, "None" makes the state unknown (light.mqtt:
// 'A "None" payload resets to an unknown state').
const stateTemplate = `{% if value_json.power is defined %}{{ value_json.power }}` +
	`{% elif value_json.brightness is defined %}{{ 'on' if value_json.brightness > 0 else 'off' }}` +
	`{% else %}None{% endif %}`

// brightnessTemplate scales the lamp's 0..scale to Home Assistant's 0..255.
// Home Assistant parses its output as an integer, so a state without
// brightness gives 0, which it ignores, rather than nothing, which it
// would log as invalid.
func brightnessTemplate(scale int) string {
	return `{{ ((value_json.brightness | default(0)) * 255 / ` + strconv.Itoa(scale) + `) | round | int }}`
}

// LightConfig is lamp id's light config under lamp prefix.
func LightConfig(prefix, id string, info Info) []byte {
	scale := info.brightnessMax()
	return marshal(lightConfig{
		UniqueID:           lightID(id),
		Schema:             "template",
		CommandTopic:       topics.Set(prefix, id),
		StateTopic:         topics.State(prefix, id),
		CommandOnTemplate:  commandOnTemplate(scale),
		CommandOffTemplate: commandOffTemplate,
		StateTemplate:      stateTemplate,
		BrightnessTemplate: brightnessTemplate(scale),
		Availability:       lampAvailability(prefix, id),
		AvailabilityMode:   "all",
		Device:             lampDevice(id, info),
		Origin:             lampgwOrigin,
	})
}

// SensorConfig is lamp id's ambient sensor config under lamp prefix. Its
// state is the retained plain value lamp/<id>/ambient.
func SensorConfig(prefix, id string, info Info) []byte {
	return marshal(sensorConfig{
		Name:             "Ambient light",
		UniqueID:         sensorID(id),
		StateTopic:       topics.Value(prefix, id, "ambient"),
		StateClass:       "measurement",
		Availability:     lampAvailability(prefix, id),
		AvailabilityMode: "all",
		Device:           lampDevice(id, info),
		Origin:           lampgwOrigin,
	})
}

// GatewayConfig is the gateway's connectivity sensor config.
func GatewayConfig() []byte {
	return marshal(gatewayConfig{
		Name:           "Status",
		UniqueID:       gatewayStatusID,
		StateTopic:     topics.GatewayStatus,
		PayloadOn:      topics.Online,
		PayloadOff:     topics.Offline,
		DeviceClass:    "connectivity",
		EntityCategory: "diagnostic",
		Device: device{
			Identifiers:  []string{gatewayID},
			Name:         "lampgw",
			Manufacturer: "lampgw",
			Model:        "lamp gateway",
		},
		Origin: lampgwOrigin,
	})
}

// marshal is json.Marshal without HTML escaping, so that a template's
// '>' reads as itself in mosquitto_sub, and without the trailing newline.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only strings, slices and structs of them: cannot fail.
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
