// Package engine starts real MQTT brokers (Debian's mosquitto and
// nats-server) as child processes on free loopback ports, for the tests
// that hold lampgw to them and for lampbench's side-by-side figures.
//
// A Proc is one running broker; Kill ends it at once (SIGKILL, the crash
// a test wants), Close ends it and waits. A missing binary is
// ErrNotInstalled, so a test can skip where the package is absent and
// fail where CI is set (see Require).
package engine
