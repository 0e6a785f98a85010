// Package topics is lampgw's MQTT topic scheme as pure functions: build a
// topic from its parts, parse a topic back into them, and validate device
// ids, keys and prefixes.
//
// With the default prefix "lamp", a lamp with id "kitchen" has:
//
//	lamp/kitchen/<key>          retained plain value of one reported key (lamp/kitchen/brightness = 512)
//	lamp/kitchen/state          retained JSON object of every reported key
//	lamp/kitchen/availability   retained "online" or "offline"
//	lamp/kitchen/error          non-retained JSON describing a refused command
//	lamp/kitchen/ack            non-retained command progress (reserved for command acknowledgements)
//	lamp/kitchen/set            command: JSON object of keys
//	lamp/kitchen/<key>/set      command: plain value for one key
//
// and the gateway itself publishes a retained "online"/"offline" on
// lampgw/status, and, for an MQTT 5 app that asks for them there,
// command acknowledgements under lampgw/replies/<user> (Replies).
//
// The names state, availability, error, ack and set are reserved and can
// never be lamp keys, so every topic parses back to exactly one meaning.
// Nothing here allocates state or does I/O; all functions are safe for
// concurrent use.
package topics
