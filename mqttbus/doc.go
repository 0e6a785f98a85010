// Package mqttbus is the bridge's Bus over an external MQTT 3.1.1 broker
// (Mosquitto, EMQX, another lampgw), through one paho.mqtt.golang client.
//
// New connects once, synchronously, and fails with an error naming the
// broker URL; after that paho reconnects on its own and Bus subscribes
// again every filter it holds, so subscriptions survive a broker restart.
// Sessions are clean. Publishes made while the connection is down wait in
// a bounded buffer (Options.Buffer) and go out in order once it is back,
// the latest retained message of a topic only; past the bound the oldest
// is dropped, counted and logged. A will (Options.Will) lets the broker
// say the bridge is gone when it dies without a DISCONNECT, and
// Options.OnConnect runs after each reconnection, to say it is back.
//
// Routing is Bus's, not paho's. paho keeps one handler per identical
// filter (a second Subscribe replaces the first) and hands every
// incoming message to all matching handlers on its one router goroutine,
// so a slow handler stalls all of them and a handler waiting for a
// publish acknowledgement deadlocks. Bus subscribes with no paho handler,
// receives everything in its default handler, matches each message
// against its own subscriptions (internal/dispatch.Match) and hands it to
// each subscription's queue and goroutine (internal/dispatch).
//
// Retained messages. An MQTT 3.1.1 broker sets the retain flag only on
// messages it replays from its retained store when a SUBSCRIBE arrives,
// and clears it on live forwards [MQTT-3.3.1-9]; paho's Retained() is
// that flag. But a replay carries no subscription, so a new subscription
// "a/+" would replay to an older overlapping "a/#" too (paho does
// exactly that). Bus therefore opens a replay window per subscription:
// after the SUBACK it publishes a fence message to its own topic
// lampgw/bus/<random>/fence, which the broker queues behind the replay,
// and a retained message reaches only subscriptions whose window is still
// open. A topic replayed twice within one window (the broker replays per
// matching filter) is delivered once. After a reconnect every window
// opens again, as every filter is subscribed again. A broker that sets
// retain on live forwards (against 3.1.1) would have such messages
// dropped for subscriptions whose window closed; an ACL must let the
// client publish and subscribe lampgw/bus/#, or windows stay open and
// overlapping subscriptions may see each other's replays.
//
// "x/#" also matches "x" [MQTT-4.7.1-2]; Bus subscribes "x" at the broker
// too, since some brokers (mochi v2.7.9) skip the retained "x" when
// replaying for "x/#". Overlapping subscriptions get each message once
// from brokers that send one copy per client, as Mosquitto and mochi do
// for MQTT 3.1.1; brokers that send a copy per matching subscription
// (allowed by [MQTT-3.3.5-1]) cause duplicates for those.
package mqttbus
