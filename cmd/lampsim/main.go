package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/lampgw/lampgw/internal/lampsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// Restore the default handlers once shutdown starts, so that a
		// second Ctrl-C ends a stuck lampsim at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is lampsim's whole life: parse the flags, run the lamps until ctx
// ends. It returns the exit code: 0 after ctx ends or for -h, 2 for a bad
// flag, 1 when the lamps cannot start (a port in use). Every failure is
// one line on stderr starting with "lampsim: ".
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fail(stderr, err)
		return 2
	}
	log := newLogger(stderr, o.LogLevel)
	o.Sim.Logger = log

	if o.Gateway != "" {
		log.Info().Str("gateway", o.Gateway).Int("count", o.Sim.Count).Msg("lampsim dialing in")
		if err := lampsim.Dial(ctx, o.Gateway, o.Sim); err != nil {
			fail(stderr, err)
			return 1
		}
	} else {
		s, err := lampsim.Listen(o.Listen, o.Sim)
		if err != nil {
			fail(stderr, err)
			return 1
		}
		addrs := s.Addrs()
		log.Info().Int("count", len(addrs)).
			Str("first", addrs[0].String()).Str("last", addrs[len(addrs)-1].String()).
			Msg("lampsim listening")
		if err := s.Serve(ctx); err != nil {
			fail(stderr, err)
			return 1
		}
	}
	log.Info().Msg("lampsim stopped")
	return 0
}

// newLogger logs to w: readable on a terminal, JSON otherwise (docker
// logs, files). level has been checked by parseArgs.
func newLogger(w io.Writer, level string) zerolog.Logger {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// fail prints err as one line.
func fail(stderr io.Writer, err error) {
	msg := strings.TrimPrefix(err.Error(), "lampsim: ")
	fmt.Fprintf(stderr, "lampsim: %s\n", strings.ReplaceAll(msg, "\n", " "))
}
