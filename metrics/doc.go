// Package metrics serves lampgw's Prometheus metrics. The counters live
// where the work happens (bridge.Stats, devices.Registry.AckCounts,
// broker.Info) and are read at scrape time, so there is one count of
// everything and nothing to keep in sync; only the report latency
// histogram is observed here, through bridge.Options.ObserveReport.
//
// Names follow lampgw_<subsystem>_<name>_<unit>; no metric has a lamp id
// as a label, so a fleet of 10,000 lamps costs no more series than one.
package metrics
