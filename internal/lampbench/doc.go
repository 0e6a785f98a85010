// Package lampbench measures lampgw against the figures of issue 7 and
// against a direct MQTT path and Mosquitto; cmd/lampbench is its command
// line. Run starts a gateway in-process (MQTT, bridge and HTTP on
// 127.0.0.1:0, the per-lamp pacing limits off as gateway/bench_test.go
// does) or measures a running one (Options.Target), plays lamps on raw
// TCP sockets and apps with paho, and returns a Report: every figure with
// its median, min and max over Options.Rounds rounds.
//
// # Scenarios
//
// latency: lamps report brightness at a fixed total rate (2,000 frames/s
// across 100 lamps, 5 s a round); one app subscribed to
// lamp/+/brightness times each report. Then paho publishers send the
// same values at the same rate through the same embedded broker to a
// paho subscriber (the direct path), and, with Options.Mosquitto,
// through Mosquitto. A frame's value is a per-lamp counter modulo 1024
// (brightness 0..1023, and the bridge publishes only changes, so each
// frame must differ from the last); the sender keeps each (lamp, value)'s
// monotonic send time in memory and the receiver takes it back, so no
// clock is in the payload. The paths alternate within a round and each
// round's ratios (gateway/direct, gateway/Mosquitto, of the p50s and of
// the p99s) compare the same few seconds. A message not received within
// 1 s of quiet after the last send is lost: a figure, not a failure.
//
// throughput: 1,000 lamps report to one app. The offered rate starts at
// ThroughputStart and doubles while a step (ThroughputStep long) passes;
// after the first failure the interval between the best pass and the
// lowest failure is halved until they are within 10 %. A step passes
// when every message arrived (after 500 ms of quiet), the senders kept
// 95 % of the rate (a bridge that stops reading slows them through TCP)
// and so did the deliveries, from the first to the last, unless the
// last came within 100 ms of the last send (a backlog that buffers
// absorb is not sustained; one late message is not a backlog). The figure is the best passing rate, with the frames/s
// actually sent and messages/s delivered in that step. With
// Options.Mosquitto the same search runs for 1,000 minimal raw MQTT
// publishers (QoS 0, no client library, as the lamps have none) into
// Mosquitto and a paho subscriber; the ratio is of the two best rates.
//
// command: an app publishes lamp/<id>/brightness/set, one command at a
// time over 10 lamps; the time is until the lamp's socket yields the
// line brightness=<v>.
//
// fanout: one lamp, 50 apps subscribed to lamp/+/brightness. The lamp
// sends windows of 100 frames and the next one once every app has every
// frame so far; deliveries/s is all deliveries over the round's time.
//
// idle: the gateway runs in its own process (Options.Spawn, lampbench's
// hidden "serve" mode), since its RSS must be its own and each process
// may hold only 20,000 descriptors. 10,000 lamps connect at once from
// 127.0.1.1 and up, 100 per address (the gateway admits 256 per address,
// and after a power cut it may still count the old connections);
// RSS per lamp is (VmRSS with the lamps - VmRSS before) / lamps, read
// from /proc/<pid>/status once every lamp is online according to
// lamp/+/availability ("just online"), and again once it has settled: no
// fall of more than 0.5 % for 3 s, at most 30 s (the runtime halves the
// stacks lamps grew while identifying and returns pages in the
// background; an idle gateway is what the figure is about). The CPU the
// settled gateway then uses over 5 s, from utime and stime in
// /proc/<pid>/stat, is its idle CPU in percent of one core. Then 5 times
// every socket is reset at once and every lamp dials again at once; the
// time is from the reset until every lamp is online again (worst cycle),
// and RSS growth is the settled RSS after the last cycle against the
// settled RSS after the first connect. The serve child's --max-lamps
// is twice the fleet so that new connections arriving before the old
// ones are seen to end are not refused; its admission rate is lampgw's
// default (--lamp-admit-rate) unless Options.LampAdmitRate says
// otherwise, so 10,000 lamps take at least 10,000 over that rate. The baseline is a plain Go TCP server
// (one goroutine and a bufio.Reader per connection, mode "serve-tcp")
// holding the same connections, measured the same way.
//
// polling: lamps change brightness at random moments (0.5 to 1.5
// intervals apart); an app polls GET /api/lamps/{id} once per interval
// (1 s) for each lamp at a random phase, another app is subscribed. A
// change's staleness is from the lamp's send to the first poll showing
// it or a newer value; push latency is from the send to the MQTT
// delivery.
//
// The machine is shared and the load generator runs on it: the figures
// are of a loopback round trip on the same cores, comparable between
// paths of one run, not absolute.
package lampbench
