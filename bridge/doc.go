// Package bridge speaks the legacy lamp protocol (NodeMCU / ESP8266
// firmware on a raw TCP socket) and translates it to and from MQTT
// through a Bus.
//
// Server.ServeConn holds the whole protocol for one connection and closes
// it; Server.Serve is only the accept loop. Each connection has one reader
// (the ServeConn goroutine) and one writer goroutine fed by a bounded
// queue, so a stuck lamp never blocks the broker or other lamps: when its
// queue is full it is dropped.
//
// # Wire protocol v1
//
// Frames. A frame is one line. "\n", "\r\n" and a bare "\r" all end a
// frame (Arduino println sends "\r\n", telnet-style firmware "\r"); blank
// lines are ignored; frames may arrive split across TCP segments or many
// per segment. A frame longer than MaxFrame bytes (default 1024,
// terminator excluded) is answered with "ERR frame too long (max 1024
// bytes)", the rest of it up to the next terminator is discarded, and the
// connection stays usable; a frame that is not valid UTF-8 gets "ERR
// invalid UTF-8". The reader's buffer never grows past MaxFrame+1 bytes.
//
// Identification. The first frame names the lamp:
//
//	HELLO kitchen
//	HELLO kitchen s3cret
//	{"id":"kitchen","brightness":512}
//
// The HELLO keyword is case-insensitive. Tokens: a devices file entry
// with a token admits only a HELLO (or JSON "token") with it; an entry
// with dial or match and no token admits no HELLO; otherwise a connected
// lamp may be taken over only by a connection with the same token, or
// none if it gave none (trust on first use). Under RequireKnownDevices an
// id not in the file is refused. Each refusal is "ERR not authorized" or
// "ERR unknown device" and closes the connection; after 5 from one
// address, more get "ERR too many failed attempts, try later", one more
// being allowed every 12 s. In a JSON object, "id" identifies and the
// other keys are the first report. An id matches ^[A-Za-z0-9_-]{1,64}$,
// so it is always exactly one topic level ("a/b", "#" and "+" are
// refused). Until a lamp identifies, every other frame gets "ERR not
// identified" and publishes nothing; a connection that has not identified
// within HandshakeTimeout (10 s) is closed. A successful HELLO gets no
// reply, because legacy firmware does not expect one: the only lines the
// gateway ever sends are commands and "ERR <reason>". A second HELLO for
// the same id is ignored; for another id it gets "ERR already identified
// as <id>".
//
// Lamps that never speak first. Server.SetDevices gives the server a
// devices file (package devices). A connection from an address that an
// entry's match holds is that lamp from its first byte, online on
// connect; the most specific prefix wins, and a HELLO for another id gets
// "ERR already identified as <id>". An entry with dial is a lamp that
// waits for a connection (an ESP8266 WiFiServer): the server dials it
// and keeps it connected, dialing again after a failure or a hang-up
// after RedialMin (1 s), doubling to RedialMax (30 s), each wait with
// equal jitter; Shutdown interrupts the wait. Such lamps are written to in
// the entry's dialect until they speak. An entry's brightness_max is that
// lamp's Schema for reports and commands, however it connects. Every lamp
// socket, accepted or dialed, gets TCP keepalive (Options.KeepAlive).
//
// Reloading the file (SetDevices again) leaves unchanged lamps connected,
// dials added ones, and closes the connection of a lamp whose settings
// changed (other than its name) so that they apply from a fresh start. A
// removed lamp is disconnected and forgotten, and every retained topic
// published for it (each key, state, availability) is cleared, so apps do
// not show ghosts. Added lamps not yet connected are announced "offline".
//
// Reports. Text pairs key=value (or key:value), several per line
// separated by spaces, tabs, commas or semicolons, or one JSON object:
//
//	brightness=512 ambient=830 mode=auto
//	brightness:512,ambient:830;mode:auto
//	{"brightness":512,"ambient":830,"mode":"auto"}
//
// A JSON report may carry "id", which must equal the connection's id,
// else "ERR id mismatch" and nothing is published. Known keys are
// validated (see package devices): brightness an integer 0..1023, ambient
// an integer >= 0, mode auto|manual, power on|off (case-insensitive,
// published in lower case). Other keys matching ^[a-z][a-z0-9_]{0,31}$
// pass through unchanged; state, availability, error, ack and set are
// reserved topic levels, and id and token identify a lamp, so all seven
// are refused as keys (a token must never be published). A bad value refuses only its
// key, e.g. "ERR brightness: out of range 0..1023", and the rest of the
// frame is published. When a key appears twice in a frame the last one
// counts. A lamp may report at most 64 distinct keys.
//
// Bad frames. One bad frame never closes a connection, but MaxBadFrames
// (20) bad frames in a row do, after "ERR too many bad frames". A frame
// is bad when nothing in it was usable.
//
// Commands. Apps publish lamp/<id>/<key>/set with a plain value or
// lamp/<id>/set with a JSON object. A valid command is written to the
// lamp as one frame in the dialect it last used, terminated with "\n":
//
//	brightness=700 mode=manual
//	{"brightness":700,"mode":"manual"}
//
// Commands are validated like reports, and all or nothing: one refused
// key refuses the whole command, writes nothing, and publishes a JSON
// error to lamp/<id>/error. Pass-through values may not contain any
// Unicode space or control character, nor, in commands, ',' or ';', so
// that any lamp can parse them back. A command
// for a lamp that is not connected is kept as desired state (newest value
// per key) and written as one frame as soon as the lamp identifies. The
// gateway never publishes state it has not heard from the lamp.
//
// Pacing and acks. A lamp is written at most Options.Devices.MaxRate
// frames a second (20); faster commands wait, coalesced per key, newest
// first (package devices). A JSON command's "rid" asks for progress on
// lamp/<id>/ack: queued, written (after the writer's Write returned),
// confirmed (the lamp reported the value), unconfirmed, superseded,
// expired, rejected. Frames still queued when a connection ends go back
// to the registry unwritten.
//
// MQTT 5 replies. When the Bus is a ReplyBus (the embedded broker's
// InlineBus is), a command comes with its MQTT 5 Response Topic and
// Correlation Data [MQTT-4.10], and its acks (queued, written, confirmed,
// unconfirmed, superseded, expired, rejected: devices.AckStatus), which
// go to lamp/<id>/ack, are published to the response topic too, with the
// command's Correlation Data, as the same JSON. CheckReply decides which
// response topics lampgw answers on: a topic name of at most
// MaxResponseTopic bytes, neither under the prefix nor lampgw/... other
// than lampgw/replies/<user>/..., with at most MaxCorrelation bytes of
// Correlation Data. A refused one leaves the command running, without
// replies, after a rate-limited warning. The broker also withholds a
// response topic the command's sender may not read (package auth), so
// nobody has replies sent to another user. Over a plain Bus (mqttbus,
// MQTT 3.1.1, which has no properties) commands have no response topic.
//
// Retained commands are one-shot. The embedded broker never stores them;
// a retained command replayed by an external broker on subscription is
// not executed, and its retained copy is cleared.
//
// # MQTT topics
//
// See package topics. Per lamp: retained lamp/<id>/<key> with the plain
// value, published when a value changes and for each key's first report
// on a connection; retained lamp/<id>/state, the JSON object of every key
// reported so far, published after a frame that changed something, at
// most once per Options.StateInterval (the latest of a burst when the
// interval ends, a held one before the offline);
// retained lamp/<id>/availability, "online" once identified and "offline"
// when the connection ends. When an id connects again while its old
// connection is still open, the new connection takes over, the old one
// is closed, and no "offline" is published.
package bridge
