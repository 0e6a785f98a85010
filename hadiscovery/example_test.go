package hadiscovery_test

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/lampgw/lampgw/hadiscovery"
)

func printJSON(topic string, payload []byte) {
	var b bytes.Buffer
	json.Indent(&b, payload, "", "  ")
	fmt.Println(topic)
	fmt.Println(b.String())
}

// The light of a lamp that the devices file names, with an 8-bit PWM.
func ExampleLightConfig() {
	info := hadiscovery.Info{Name: "Kitchen lamp", BrightnessMax: 255}
	printJSON(hadiscovery.LightTopic("homeassistant", "kitchen"), hadiscovery.LightConfig("lamp", "kitchen", info))
	// Output:
	// homeassistant/light/lampgw_kitchen_light/config
	// {
	//   "name": null,
	//   "unique_id": "lampgw_kitchen_light",
	//   "schema": "template",
	//   "command_topic": "lamp/kitchen/set",
	//   "state_topic": "lamp/kitchen/state",
	//   "command_on_template": "{\"power\":\"on\"{% if brightness is defined %},\"brightness\":{{ (brightness * 255 / 255) | round | int }}{% endif %}}",
	//   "command_off_template": "{\"power\":\"off\"}",
	//   "state_template": "{% if value_json.power is defined %}{{ value_json.power }}{% elif value_json.brightness is defined %}{{ 'on' if value_json.brightness > 0 else 'off' }}{% else %}None{% endif %}",
	//   "brightness_template": "{{ ((value_json.brightness | default(0)) * 255 / 255) | round | int }}",
	//   "availability": [
	//     {
	//       "topic": "lamp/kitchen/availability",
	//       "payload_available": "online",
	//       "payload_not_available": "offline"
	//     },
	//     {
	//       "topic": "lampgw/status",
	//       "payload_available": "online",
	//       "payload_not_available": "offline"
	//     }
	//   ],
	//   "availability_mode": "all",
	//   "device": {
	//     "identifiers": [
	//       "lampgw_kitchen"
	//     ],
	//     "name": "Kitchen lamp",
	//     "manufacturer": "lampgw",
	//     "model": "legacy lamp",
	//     "via_device": "lampgw"
	//   },
	//   "origin": {
	//     "name": "lampgw"
	//   }
	// }
}

// The ambient sensor of a lamp that only said HELLO: named after its id.
func ExampleSensorConfig() {
	printJSON(hadiscovery.SensorTopic("homeassistant", "hall"), hadiscovery.SensorConfig("lamp", "hall", hadiscovery.Info{}))
	// Output:
	// homeassistant/sensor/lampgw_hall_ambient/config
	// {
	//   "name": "Ambient light",
	//   "unique_id": "lampgw_hall_ambient",
	//   "state_topic": "lamp/hall/ambient",
	//   "state_class": "measurement",
	//   "availability": [
	//     {
	//       "topic": "lamp/hall/availability",
	//       "payload_available": "online",
	//       "payload_not_available": "offline"
	//     },
	//     {
	//       "topic": "lampgw/status",
	//       "payload_available": "online",
	//       "payload_not_available": "offline"
	//     }
	//   ],
	//   "availability_mode": "all",
	//   "device": {
	//     "identifiers": [
	//       "lampgw_hall"
	//     ],
	//     "name": "hall",
	//     "manufacturer": "lampgw",
	//     "model": "legacy lamp",
	//     "via_device": "lampgw"
	//   },
	//   "origin": {
	//     "name": "lampgw"
	//   }
	// }
}

func ExampleGatewayConfig() {
	printJSON(hadiscovery.GatewayTopic("homeassistant"), hadiscovery.GatewayConfig())
	// Output:
	// homeassistant/binary_sensor/lampgw_status/config
	// {
	//   "name": "Status",
	//   "unique_id": "lampgw_status",
	//   "state_topic": "lampgw/status",
	//   "payload_on": "online",
	//   "payload_off": "offline",
	//   "device_class": "connectivity",
	//   "entity_category": "diagnostic",
	//   "device": {
	//     "identifiers": [
	//       "lampgw"
	//     ],
	//     "name": "lampgw",
	//     "manufacturer": "lampgw",
	//     "model": "lamp gateway"
	//   },
	//   "origin": {
	//     "name": "lampgw"
	//   }
	// }
}
