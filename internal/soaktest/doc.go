// Package soaktest holds lampgw's robustness tests, which run a whole
// gateway under load from the outside: lamps as raw TCP sockets, apps as
// real MQTT clients (paho). It has no code of its own, only tests, so
// that its goroutine-leak check (go.uber.org/goleak, in TestMain) sees
// these tests' goroutines and nobody else's.
//
//   - TestSoak: 500 lamps flapping while apps send commands with request
//     ids; every command ends with exactly one final ack, in an order the
//     ack table allows, confirmed values are what the lamps hold, and
//     neither goroutines nor the heap grow. -soak=5m runs it longer.
//   - TestSlowSubscriber: an MQTT client that stops reading stalls
//     neither the lamps, nor the other apps, nor commands.
//   - TestReconnectStorm and BenchmarkReconnectStorm: thousands of lamps
//     connecting at once while an app measures the delay of a steady
//     lamp's reports.
//   - TestAckTable and TestRegistryAcksFollowTheTable: the ack order the
//     soak checks against, and the registry held to it.
//
// TestSameValueTwiceInFlight, TestAckBurst and TestSlowSubscriber/QoS1
// found bugs, since fixed, and keep them fixed.
package soaktest
