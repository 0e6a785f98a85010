// Command lampbench measures lampgw against the figures of issue 7:
// report latency against the direct MQTT path and Mosquitto, maximum
// report throughput with zero loss, command latency, fan-out, the memory
// of idle lamps and reconnect storms, and polling against push. The
// logic is package internal/lampbench; its doc says how each figure is
// taken.
//
//	lampbench                                  every scenario, in-process gateway
//	lampbench --mosquitto --json               with Mosquitto, for machines
//	lampbench --only latency,command --rounds 5
//	lampbench --target 127.0.0.1 --mqtt-port 1883 --bridge-port 7000 --http-port 8080 --target-pid 1234
//
// Every flag can also be set by an environment variable, LAMPBENCH_ and
// the flag in upper snake case (LAMPBENCH_ROUNDS=5); a flag beats the
// environment. `lampbench -h` lists them all.
//
// The idle scenario runs the gateway in a child process: lampbench runs
// itself with the hidden subcommand "serve" (and "serve-tcp" for the
// baseline server), which ends when its stdin does.
//
// Exit codes: 0 when every scenario ran (a figure that misses its target
// is still a figure), 1 when a scenario failed or the gateway could not
// start, 2 for a bad flag. Each failure is one line "lampbench: <reason>"
// on stderr.
package main
