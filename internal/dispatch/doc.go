// Package dispatch hands MQTT messages from the goroutine that received
// them to a subscription's handler, bounded, in order and panic-safe; both
// bus adapters (broker.InlineBus and mqttbus.Bus) use it, so they share one
// delivery contract.
//
// A Queue owns one goroutine that calls its Handler serially, in the order
// messages were pushed. Producers never wait for the handler: TryPush drops
// (and counts) a message when the queue is full, because the producer is a
// broker or network goroutine that other clients depend on. Push waits for
// room and is meant for the one producer that may block, the goroutine
// replaying retained messages inside Subscribe.
//
// A panicking handler is recovered and logged; the queue keeps running.
// Stop is safe to call from inside the handler; Wait is not.
//
// The file topic.go holds the MQTT topic rules both adapters route by
// (Match, ValidFilter, ValidTopic), so the two adapters cannot disagree on
// what a filter matches.
package dispatch
