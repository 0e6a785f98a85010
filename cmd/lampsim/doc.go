// Command lampsim simulates lamps for lampgw, so that the whole system can
// be tried without hardware (see package internal/lampsim for how the
// lamps behave).
//
// It runs in one of two modes:
//
//	lampsim --gateway 127.0.0.1:7000 --count 3    lamps dial in and say HELLO
//	lampsim --listen 127.0.0.1:8888 --count 2     lamps listen on 8888 and 8889, like ESP8266 WiFiServer firmware
//
// Every flag can also be set by an environment variable, LAMPSIM_ and the
// flag in upper snake case (LAMPSIM_COUNT=3); a flag beats the
// environment, and an empty variable counts as unset. `lampsim -h` lists
// them all.
//
// Exit codes: 0 after SIGINT or SIGTERM (and for -h), 2 for a bad flag or
// value, which prints one line "lampsim: <reason>" on stderr, 1 when a
// port cannot be bound.
package main
