// Package bustest is the conformance suite for implementations of the
// bridge's Bus interface (bridge/bus.go): one Run, called from the tests
// of every adapter, so the embedded broker's InlineBus and the external
// broker adapter mqttbus.Bus are held to the same contract against real
// brokers.
//
// Each case makes its own Bus through the caller's constructor and uses a
// random topic prefix, so cases may share one broker. Nothing sleeps: a
// case waits for a marker message it published last, relying on the
// per-publisher order the contract promises, and fails at a deadline.
package bustest
