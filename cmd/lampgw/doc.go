// Command lampgw runs the lamp gateway: an embedded MQTT broker plus a
// bridge that turns legacy lamps' raw-TCP line sockets into MQTT topics.
//
// This is the only place that reads flags, environment variables and the
// config file; everything else takes a gateway.Options. Every setting has
// three spellings, highest precedence first:
//
//	--mqtt-addr :1884              a flag
//	LAMPGW_MQTT_ADDR=:1884         an environment variable: LAMPGW_ + the flag in upper snake case
//	mqtt-addr: ":1884"             a key in the YAML file named by --config (or LAMPGW_CONFIG)
//
// and an unset setting takes its default. An empty address, or "off",
// disables that listener. `lampgw -h` lists every setting.
//
// Exit codes: 0 after a clean shutdown on SIGINT or SIGTERM (and for -h),
// 2 for a usage error (unknown flag, bad value, bad config file), 1 for a
// runtime failure (a port in use, a shutdown that overran its 5 s). A
// startup failure prints exactly one line on stderr, "lampgw: <setting>:
// <problem>", so that it is the first and only thing an operator reads.
package main
