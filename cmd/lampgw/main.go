package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lampgw/lampgw/gateway"
)

// shutdownTimeout is --shutdown-timeout's default: the bound of a graceful
// shutdown, past which lampgw exits 1 and lets the kernel close the rest.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// Restore the default handlers once shutdown starts, so that a
		// second Ctrl-C kills an impatient operator's lampgw at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is lampgw's whole life: parse the settings, start the gateway, serve
// until ctx ends, shut down. It returns the exit code: 0 after a clean
// shutdown or for -h, 2 for a usage error, 1 for a runtime failure. Every
// failure is one line on stderr starting with "lampgw: ".
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == cmdHealthcheck {
		return runHealthcheck(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == cmdVersion {
		return runVersion(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == cmdPasswd {
		return runPasswd(args[1:], os.Stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == cmdLamps {
		return runLamps(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fail(stderr, err)
		return 2
	}

	gate := newStartupGate(stderr)
	logger := newLogger(gate, cfg.LogLevel, cfg.LogFormat, isTerminal(stderr))
	// At debug level the operator asked for detail, so a failed start
	// still shows what the gateway logged before the error line.
	abandon := gate.drop
	if cfg.LogLevel == "debug" {
		abandon = gate.open
	}

	g, err := gateway.New(gateway.Options{
		MQTTAddr:             cfg.MQTTAddr,
		WSAddr:               cfg.WSAddr,
		HTTPAddr:             cfg.HTTPAddr,
		BridgeAddr:           cfg.BridgeAddr,
		MQTTSAddr:            cfg.MQTTSAddr,
		WSSAddr:              cfg.WSSAddr,
		HTTPSAddr:            cfg.HTTPSAddr,
		BridgeTLSAddr:        cfg.BridgeTLSAddr,
		TLSCertFile:          cfg.TLSCert,
		TLSKeyFile:           cfg.TLSKey,
		TLSClientCAFile:      cfg.TLSClientCA,
		DataDir:              cfg.DataDir,
		DataReset:            cfg.DataReset,
		TopicPrefix:          cfg.TopicPrefix,
		MaxFrame:             cfg.MaxFrame,
		DevicesFile:          cfg.DevicesFile,
		UsersFile:            cfg.UsersFile,
		AllowAnonymous:       cfg.AllowAnonymous,
		RequireKnownDevices:  cfg.RequireKnownDevices,
		LampHandshakeTimeout: cfg.LampHandshake,
		LampIdleTimeout:      cfg.LampIdle,
		MaxLamps:             cfg.MaxLamps,
		MaxLampsPerAddr:      cfg.MaxLampsPerAddr,
		LampFrameRate:        frameRate(cfg.LampFrameRate),
		MaxPacketSize:        cfg.MaxPacketSize,
		ConfirmTimeout:       cfg.ConfirmTimeout,
		CommandTTL:           cfg.CommandTTL,
		LampMaxRate:          frameRate(cfg.LampMaxRate),
		DebugMirror:          cfg.DebugMirror,
		LampAdmitRate:        frameRate(cfg.LampAdmitRate),
		StateInterval:        stateInterval(cfg.StateInterval),
		HADiscovery:          cfg.HADiscovery,
		HAPrefix:             cfg.HAPrefix,
		BrokerURL:            cfg.BrokerURL,
		BrokerUsername:       cfg.BrokerUser,
		BrokerPassword:       cfg.BrokerPassword,
		BrokerCAFile:         cfg.BrokerCA,
		InstanceID:           cfg.InstanceID,
		BrokerKeepAlive:      cfg.BrokerKeepAlive,
		BrokerBuffer:         brokerBuffer(cfg.BrokerBuffer),
		Logger:               logger,
	})
	if err != nil {
		abandon()
		fail(stderr, err)
		// New only checks options, so a SettingError is a bad value the
		// user gave, not something that went wrong at run time.
		if _, ok := errors.AsType[*gateway.SettingError](err); ok {
			return 2
		}
		return 1
	}
	if err := g.Start(); err != nil {
		abandon()
		fail(stderr, err)
		return 1
	}
	gate.open()

	a := g.Addrs()
	ev := logger.Info()
	if cfg.BrokerURL != "" {
		ev = ev.Str("broker", redactURL(cfg.BrokerURL)).Str("instance", cfg.InstanceID)
	}
	ev.Str("mqtt", addrString(a.MQTT)).
		Str("ws", addrString(a.WS)).
		Str("http", addrString(a.HTTP)).
		Str("bridge", addrString(a.Bridge)).
		Str("mqtts", addrString(a.MQTTS)).
		Str("wss", addrString(a.WSS)).
		Str("https", addrString(a.HTTPS)).
		Str("bridge_tls", addrString(a.BridgeTLS)).
		Str("data_dir", cfg.DataDir).
		Str("topic_prefix", cfg.TopicPrefix).
		Msg("lampgw listening")

	if cfg.AllowAnonymous {
		logger.Warn().Msg("anonymous MQTT clients are accepted from any address (--allow-anonymous)")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			logger.Info().Msg("SIGHUP: reloading")
			g.Reload() // logs each file's outcome
		}
	}
	logger.Info().Msg("lampgw shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		logger.Error().Err(err).Dur("timeout", cfg.ShutdownTimeout).Msg("lampgw shutdown incomplete")
		return 1
	}
	logger.Info().Msg("lampgw stopped")
	return 0
}

// frameRate maps a rate flag's 0 (no limit) to the negative the bridge
// and registry take (their 0 is the default).
func frameRate(r float64) float64 {
	if r == 0 {
		return -1
	}
	return r
}

// addrString renders a listener's address for the startup line; a disabled
// listener has none.
func addrString(a net.Addr) string {
	if a == nil {
		return addrOff
	}
	return a.String()
}

// fail prints err as the single line an operator reads on a failed start.
func fail(stderr io.Writer, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(stderr, "lampgw: %s\n", msg)
}

// brokerBuffer maps --broker-buffer 0 (none) to mqttbus's "no buffer".
func brokerBuffer(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// stateInterval maps --state-interval 0 (every report) to the bridge's
// negative "no interval"; its 0 would mean the default.
func stateInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
