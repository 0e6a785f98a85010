// Package gateway wires lampgw together: the embedded MQTT broker, the
// lamp bridge on top of its in-process bus, the HTTP server, and the
// gateway's own lampgw/status. cmd/lampgw fills Options from flags, env and
// the config file; tests and benchmarks use the same Options to start a
// whole gateway in-process on 127.0.0.1:0.
package gateway
