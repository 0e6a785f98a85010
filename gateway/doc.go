// Package gateway wires lampgw together: the embedded MQTT broker, the
// lamp bridge on top of its in-process bus, the HTTP server, and the
// gateway's own lampgw/status. cmd/lampgw fills Options from flags, env and
// the config file; tests and benchmarks use the same Options to start a
// whole gateway in-process on 127.0.0.1:0.
//
// With Options.HADiscovery, package hadiscovery announces the lamps to
// Home Assistant on the same bus: started after the bridge, told of each
// devices file reload, closed before the broker.
//
// With Options.DataDir (persist.go, package store), Start opens the data
// dir before it binds anything; the broker loads its retained messages
// and sessions from it, each stale "online" rewritten to "offline",
// before its listeners accept; the registry keeps pending commands in
// it; and Shutdown closes it last, synced.
//
// Every listener may have a TLS twin (Options.MQTTSAddr and the like);
// all of them serve one certificate, loaded by internal/tlsconf in New
// and again by Reload, which is also where the devices file is reloaded.
package gateway
