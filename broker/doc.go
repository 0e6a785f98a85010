// Package broker is lampgw's embedded MQTT broker: mochi-mqtt v2.7.9 with
// our own listeners, hooks and an in-process Bus adapter for the bridge.
//
// A Broker is built by New and starts listening in Start; Close stops
// everything once (mochi's own Close panics on a second call). Bus returns
// the InlineBus the bridge publishes and subscribes through without a
// network hop; it works from New on, with or without listeners.
//
// What the wrapper changes about mochi, each because of a trap in v2.7.9
// (file and behaviour cited where it is handled):
//
//   - Retained messages live until replaced or cleared. mochi's default
//     MaximumMessageExpiryInterval of 86400 s purges every retained
//     message after a day (server.go clearExpiredRetainedMessages).
//   - Who connects and what each client may publish, subscribe to and
//     receive is authHook's (auth.go), with Options.Users and Options.ACL
//     (package auth), not mochi's auth ledger, which compares plain
//     passwords and walks its rules in map order. Every refusal of a
//     CONNECT is "not authorized" in the client's MQTT version; a will
//     message is checked when it is sent, since mochi publishes wills
//     without asking the ACL (server.go sendLWT); SetUsers disconnects the
//     clients whose rights narrowed.
//   - A retained PUBLISH on a command topic (Options.IsCommandTopic) is
//     delivered live but never stored, so a command cannot replay to a
//     later subscriber and switch a lamp again ("ghost switching").
//   - Each client's outbound queue is small (Options.MaxClientWritesPending)
//     and drops past it are counted (Dropped).
//   - Listeners are ours (tcpListener, wsListener): bound in Start so port 0
//     works and a bind error names the listener, accept errors back off
//     instead of ending the listener, and a connection that sends no
//     CONNECT is closed after Options.HandshakeTimeout rather than holding
//     Close forever (mochi reads CONNECT with no deadline).
//   - The TLS listeners (Options.MQTTSAddr, WSSAddr) are the same two
//     over tls.NewListener: the handshake runs in the connection's
//     goroutine within the same deadline, and a failed one is a
//     rate-limited warning, not a line per scanner.
//   - Close cannot hang: a client that stopped reading is cut off after a
//     short grace (mochi would wait for its keepalive deadline), and
//     clients are disconnected without Clients.GetByListener, which can
//     deadlock against a client leaving at the same moment.
//   - With Options.Storage, retained messages and the sessions of clients
//     that asked for one survive a restart, loaded in Start before any
//     listener accepts (storage.go). The hook is ours, not mochi's
//     pebble hook, whose v2.7.9 leaks iterators, keeps the records of
//     ended sessions forever and restores them as subscriptions of
//     nobody, and loses a restored message's expiry.
//   - A disconnected session is kept Options.MaxSessionExpiry (a day),
//     not forever (mochi's default), and an expired session's
//     subscriptions leave the topic index (expiryHook; mochi drops only
//     the client).
//   - A client's SUBSCRIBE and UNSUBSCRIBE are honoured while the broker
//     has its own QoS > 0 PUBLISH with the same packet identifier in
//     flight to that client; mochi refuses them (packetIDHook).
//
// InlineBus follows MQTT where mochi's inline client does not: "x/#" also
// matches "x", wildcard-first filters never see $SYS, every subscription
// is independent, handlers run on their own goroutine, and retained is
// true only for the replay made when subscribing. See InlineBus.
package broker
