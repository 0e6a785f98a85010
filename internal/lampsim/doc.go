// Package lampsim simulates lamps the way their real firmware behaves, so
// that lampgw can be tried and tested without hardware.
//
// Each simulated lamp has a light sensor (ambient, an ESP8266 ADC reading
// 0..1023) that follows a day/night curve with noise, and a brightness
// (0..BrightnessMax). In mode auto the lamp dims as the room gets brighter
// (dark room, bright lamp); in mode manual it holds the brightness it was
// commanded. Power is on or off. A lamp reports its whole state as one
// frame when something changed, plus a heartbeat when it has said nothing
// for Options.Heartbeat, and after every command it applies:
//
//	brightness=512 ambient=830 mode=auto power=on
//	{"brightness":512,"ambient":830,"mode":"auto","power":"on"}
//
// Commands are the frames the gateway sends (see package bridge), in
// either dialect whatever the lamp's own: "brightness=700 mode=manual" or
// {"brightness":700,"mode":"manual"}. Unknown keys are ignored, as
// firmware does, and "ERR <reason>" lines are logged.
//
// Two ways to meet the gateway, as installed lamps do:
//
//   - Dial: each lamp connects to the gateway's lamp port, sends
//     "HELLO <id>" first, and reconnects with backoff when the connection
//     ends.
//   - Listen and Server.Serve: each lamp listens on its own port, counting
//     up from the given one, like ESP8266 firmware running a WiFiServer; it
//     never sends HELLO and serves whoever connects, telnet style, every
//     client at once.
//
// Time comes from Options.Now, so tests move the sun without sleeping;
// Options.Day compresses a day. Noise comes from math/rand/v2 with one
// stream per lamp, seeded from Options.Seed and the lamp's index, so a run
// is repeatable.
//
// The model (model.go) is pure: no clock, no goroutines, no I/O.
package lampsim
