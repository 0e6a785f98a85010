package main

import (
	"bytes"
	"io"
	"os"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// newLogger returns the logger every part of lampgw writes to. level and
// format have been validated by parseConfig.
func newLogger(w io.Writer, level, format string, terminal bool) zerolog.Logger {
	if format == "console" || format == "auto" && terminal {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !terminal}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal, for --log-format auto.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startupGate holds log output back until the gateway has started, so that
// a startup failure is one line on stderr rather than that line buried
// under the broker's start-up chatter. After open it writes straight
// through; after drop it discards. It is safe for concurrent use, since
// the gateway logs from its own goroutines.
type startupGate struct {
	mu   sync.Mutex
	out  io.Writer
	held [][]byte
	// state is gateHolding, gateOpen or gateDropped.
	state int
}

const (
	gateHolding = iota
	gateOpen
	gateDropped
)

func newStartupGate(out io.Writer) *startupGate { return &startupGate{out: out} }

func (g *startupGate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state {
	case gateHolding:
		g.held = append(g.held, bytes.Clone(p)) // zerolog reuses p
		return len(p), nil
	case gateDropped:
		return len(p), nil
	}
	return g.out.Write(p)
}

// open writes what was held, in order, and lets later writes through.
func (g *startupGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.held {
		g.out.Write(p)
	}
	g.held, g.state = nil, gateOpen
}

// drop forgets what was held and discards later writes.
func (g *startupGate) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held, g.state = nil, gateDropped
}
