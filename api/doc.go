// Package api is lampgw's HTTP API and web dashboard: the lamps as JSON,
// commands that answer with their outcome, a Server-Sent Events stream of
// what happens, an OpenAPI document, and a dashboard embedded in the
// binary. The gateway mounts it (Server.Register) on its HTTP listeners,
// --http-addr and --https-addr alike.
//
// # Routes
//
//	GET  /api/lamps            every lamp the user may see: {"lamps":[Lamp...]}
//	GET  /api/lamps/{id}       one Lamp
//	POST /api/lamps/{id}/set   a command, {"brightness":700}; answers with its outcome
//	GET  /api/events           Server-Sent Events (below)
//	GET  /api/openapi.json     the OpenAPI 3 document of these routes
//	GET  /                     the dashboard (and /assets/...)
//
// A Lamp is the registry's snapshot with the devices file's name:
//
//	{"id":"kitchen","name":"Kitchen","online":true,"last_seen":"2026-11-22T04:30:00Z",
//	 "brightness_max":1023,"reported":{"ambient":830,"brightness":512,"mode":"auto"},
//	 "desired":{"brightness":700}}
//
// # Commands
//
// The API takes no short cut to the lamp. POST /api/lamps/{id}/set adds a
// request id it makes up ("rid", see docs/protocol.md) to the JSON object
// it was given and publishes it on <prefix>/<id>/set through the
// in-process bus, where the bridge validates, paces and acknowledges it
// as it does an MQTT app's command. The handler then follows
// <prefix>/<id>/ack for that rid:
//
//	200  every key ended confirmed, unconfirmed, superseded or expired
//	202  the lamp is offline and the command is queued for it; or the
//	     wait (the confirm timeout plus 2 s) ended first, and "status" is
//	     the last step seen
//	400  rejected; "error" is the bridge's reason
//	504  no acknowledgement at all within the wait
//
//	{"id":"kitchen","rid":"api-5f0c...","status":"confirmed",
//	 "keys":{"brightness":{"status":"confirmed","value":700}}}
//
// A body must be a JSON object sent as application/json (415 otherwise,
// which also makes a browser ask before a cross-site page may send one);
// one with its own "rid" is refused, as the answer already follows the
// command. As over MQTT, a command for an id the gateway has not seen is
// kept for it (202, queued).
//
// # Events
//
// GET /api/events is a text/event-stream. It starts with a "lamps" event
// holding what GET /api/lamps would, then carries what the bus says under
// <prefix>/#, one event each:
//
//	event: state          {"id":"kitchen","state":{"brightness":700,...},"time":"..."}
//	event: availability   {"id":"kitchen","online":false,"time":"..."}
//	event: removed        {"id":"kitchen"}   (gone from the devices file)
//	event: ack            {"id":"kitchen","rid":"r1","key":"brightness","value":700,"status":"written","time":"..."}
//	event: refused        {"id":"kitchen","topic":"lamp/kitchen/set","payload":"...","error":"..."}
//
// ("time" is when the gateway heard it, so a state's is the lamp's last
// sighting) and a ": ping" comment every 15 s. One bus subscription feeds every
// stream. Each stream has a bounded buffer (Options.EventBuffer); a client
// that falls so far behind that its buffer is full is dropped, so that it
// never holds up the others or the bus, and a write that cannot finish
// within Options.WriteTimeout ends the stream too. EventSource reconnects
// by itself and starts again from a "lamps" event. Streams end when the
// server shuts down (Close).
//
// # Who may do what
//
// The users and roles are MQTT's (package auth), given as HTTP basic
// authentication and checked by an auth.Verifier (cached, failures
// limited per address):
//
//   - without a users file, every client is let in from loopback, or from
//     anywhere with AllowAnonymous, and may do everything, as over MQTT.
//     A loopback client let in that way must name the server by an IP
//     address or localhost in its Host header, so that a web page whose
//     DNS name was pointed at 127.0.0.1 (DNS rebinding) gets nothing;
//   - with a users file, a client logs in; one without credentials is a
//     viewer if AllowAnonymous, else refused;
//   - a viewer may GET, an app or admin may also command; lamp patterns
//     hide other lamps from the lists and the event stream, and refuse
//     them with 403.
//
// Refusals are 401 (with WWW-Authenticate, so a browser asks for a login)
// or 403, 429 after too many failed logins from an address, each with a
// one-line JSON reason ({"error":"..."}) and a rate-limited warning that
// names the remote address and user, never the password. A POST from
// another site is refused (http.CrossOriginProtection).
package api
