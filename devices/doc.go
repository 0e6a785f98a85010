// Package devices is the lamp model: what a lamp's keys may hold, and the
// registry of every lamp the gateway knows (reported state, desired state,
// presence, and which connection speaks for it).
//
// Values come in two spellings, kept side by side in a Value: the plain
// text an MQTT app sees on lamp/<id>/<key> ("512", "auto") and the JSON
// literal used in lamp/<id>/state and in frames to JSON lamps (512,
// "auto"). A Schema turns untrusted text or JSON into Values, refusing
// what a lamp cannot hold (brightness 5000, mode "party").
//
// The Registry serialises everything that happens to one device under that
// device's lock, so availability, reports and commands of one lamp reach
// MQTT in the order they happened even across a take-over. Callbacks given
// to the Registry run under that lock; they must not block for long and
// must not call back into the Registry for the same device.
package devices
