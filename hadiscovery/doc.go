// Package hadiscovery announces lampgw's lamps to Home Assistant through
// MQTT discovery, so that each lamp appears in Home Assistant as a device
// with a light and an ambient-light sensor, without any YAML there.
//
// It follows Home Assistant's MQTT discovery documentation
// (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery), the
// MQTT light's template schema
// (https://www.home-assistant.io/integrations/light.mqtt/#template-schema),
// the MQTT sensor (https://www.home-assistant.io/integrations/sensor.mqtt/)
// and the MQTT binary sensor
// (https://www.home-assistant.io/integrations/binary_sensor.mqtt/).
//
// # Topics
//
// With the default Home Assistant prefix "homeassistant" and lamp prefix
// "lamp", a lamp with id kitchen gets two retained configs, and the
// gateway one:
//
//	homeassistant/light/lampgw_kitchen_light/config      the light
//	homeassistant/sensor/lampgw_kitchen_ambient/config   its ambient reading, lamp/kitchen/ambient
//	homeassistant/binary_sensor/lampgw_status/config     the gateway itself, lampgw/status
//
// The discovery topic is <discovery_prefix>/<component>/<object_id>/config
// with the entity's unique_id as object_id and no node_id, which the
// discovery documentation calls best practice for entities with a
// unique_id. Lamp ids are [A-Za-z0-9_-], the characters an object_id
// may hold, so every id makes a valid topic.
//
// # When
//
// A lamp's configs are published when lampgw first learns of it: on its
// first message on lamp/<id>/availability, online or offline, which the
// bridge publishes when a lamp identifies and when the devices file
// declares it (dialed and matched lamps get theirs before they connect).
// They are published again, where they changed, when the devices file is
// reloaded (Discovery.DevicesChanged: a new name or brightness_max), and
// all of them when Home Assistant announces itself with "online" on
// <ha-prefix>/status, its birth message, as the discovery documentation
// asks ("A better approach ... is for the software generating MQTT
// discovery messages to send discovery payload(s) when the MQTT
// integration sends the Birth message"). They are retained too, so a Home
// Assistant that subscribes later finds them without a birth message.
//
// A lamp removed from the devices file has its configs cleared with an
// empty retained payload, which the documentation defines as removing
// the entity (and the device once nothing refers to it): at once by
// DevicesChanged, and again, as a no-op, when the bridge clears the
// lamp's availability with an empty retained message.
//
// # The light
//
// Home Assistant's JSON schema light sends {"state":"ON","brightness":N}
// and expects "state" in the state JSON. lampgw cannot speak it: state is
// a reserved level of its topic scheme (lamp/<id>/state is the state
// topic), so a command with a "state" key is refused like a report's, and
// the state JSON never has one. The template schema lets the config say
// exactly what to send and how to read the state, so the light uses it:
//
//	command_topic        lamp/kitchen/set (one JSON command: all keys or none)
//	command_on_template  {"power":"on"} and, when Home Assistant gives a brightness, "brightness":<scaled>
//	command_off_template {"power":"off"}
//	state_topic          lamp/kitchen/state
//	state_template       power when the lamp reported it, else on for brightness > 0
//	brightness_template  brightness scaled to 0..255
//
// The template schema has no brightness_scale: its templates get and
// give brightness as 0..255 ("Values red, green, blue, brightness are
// provided as integers from range 0-255"; brightness_template: "Expected
// result of the template is an integer from 0-255 range"). So the lamp's
// maximum (devices file brightness_max, default 1023) is the scale inside
// both templates: Home Assistant's 255 is the lamp's maximum both ways.
// A config is rendered again when brightness_max changes.
//
// # Availability
//
// Every lamp entity lists two availability topics with availability_mode
// all: lamp/<id>/availability and lampgw/status, both online/offline, so
// a lamp is available only while it is connected and lampgw runs.
//
// # The device block
//
// A lamp is one Home Assistant device, identifiers ["lampgw_<id>"], named
// after its devices file name or else its id, made by "lampgw", model
// "legacy lamp", via_device "lampgw": the gateway, which is a device of
// its own (identifiers ["lampgw"]) through the connectivity binary sensor
// on lampgw/status. Without that config Home Assistant would make the
// via_device an unnamed device. The light's name is null, which marks it
// the main feature of its device (it takes the device's name); the
// sensor is "Ambient light". Every config carries origin {"name":"lampgw"},
// which the discovery documentation recommends.
//
// Payloads are published through the in-process bus (the broker's inline
// client), which the broker never checks against its ACL; Home
// Assistant's own client needs the admin role, or no users file, to read
// <ha-prefix>/... and publish its birth message there (package auth,
// rules R4 and W5), and app or admin to publish lamp commands.
package hadiscovery
