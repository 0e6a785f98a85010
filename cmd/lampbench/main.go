package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/lampgw/lampgw/internal/lampbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second Ctrl-C ends a stuck lampbench at once.
		<-ctx.Done()
		stop()
	}()
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == lampbench.ModeServe || args[0] == lampbench.ModeServeTCP) {
		// The hidden child modes of the idle scenario.
		if err := lampbench.Child(ctx, args[0], args[1:], os.Stdin, os.Stdout); err != nil {
			fail(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is lampbench's whole life: parse the flags, measure, print. It
// returns the exit code: 0 when every scenario ran, 1 when one failed, 2
// for a bad flag.
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
	lvl, _ := zerolog.ParseLevel(o.LogLevel)
	cw := zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cw.NoColor = false
	}
	o.Bench.Logger = zerolog.New(cw).Level(lvl).With().Timestamp().Logger()
	o.Bench.Stderr = stderr
	o.Bench.Spawn = spawn
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fail(stderr, fmt.Errorf("cpuprofile: %w", err))
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	r, err := lampbench.Run(ctx, o.Bench)
	if errors.Is(err, lampbench.ErrOptions) {
		fail(stderr, err)
		return 2
	}
	if err != nil && r == nil {
		fail(stderr, err)
		return 1
	}
	r.Command = "lampbench " + strings.Join(args, " ")
	if o.JSON {
		r.WriteJSON(stdout)
	} else {
		r.WriteTable(stdout)
	}
	if err != nil {
		fail(stderr, err)
		return 1
	}
	if failed := r.Failed(); len(failed) > 0 {
		fail(stderr, fmt.Errorf("%s: %s", failed[0].Name, failed[0].Err))
		return 1
	}
	return 0
}

// spawn runs this binary again in a child mode.
func spawn(mode string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, append([]string{mode}, args...)...)
}

// fail prints err as one line.
func fail(stderr io.Writer, err error) {
	msg := strings.TrimPrefix(err.Error(), "lampbench: ")
	fmt.Fprintf(stderr, "lampbench: %s\n", strings.ReplaceAll(msg, "\n", " "))
}
