package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"gopkg.in/yaml.v3"

	"github.com/lampgw/lampgw/cluster"
	"github.com/lampgw/lampgw/hadiscovery"
	"github.com/lampgw/lampgw/internal/flagenv"
	"github.com/lampgw/lampgw/topics"
)

// Flag names. They are also the config file keys, the Setting of a
// gateway.SettingError and the first word of every config error.
const (
	flagConfig          = "config"
	flagMQTTAddr        = "mqtt-addr"
	flagWSAddr          = "ws-addr"
	flagHTTPAddr        = "http-addr"
	flagBridgeAddr      = "bridge-addr"
	flagMQTTSAddr       = "mqtts-addr"
	flagWSSAddr         = "wss-addr"
	flagHTTPSAddr       = "https-addr"
	flagBridgeTLSAddr   = "bridge-tls-addr"
	flagTLSCert         = "tls-cert"
	flagTLSKey          = "tls-key"
	flagTLSClientCA     = "tls-client-ca"
	flagDataDir         = "data-dir"
	flagDataReset       = "data-reset"
	flagTopicPrefix     = "topic-prefix"
	flagMaxFrame        = "max-frame"
	flagDevices         = "devices"
	flagUsers           = "users"
	flagAllowAnon       = "allow-anonymous"
	flagRequireKnown    = "require-known-devices"
	flagLampHandshake   = "lamp-handshake-timeout"
	flagLampIdle        = "lamp-idle-timeout"
	flagMaxLamps        = "max-lamps"
	flagMaxLampsPerAddr = "max-lamps-per-addr"
	flagLampFrameRate   = "lamp-frame-rate"
	flagMaxPacketSize   = "max-packet-size"
	flagConfirmTimeout  = "confirm-timeout"
	flagCommandTTL      = "command-ttl"
	flagLampMaxRate     = "lamp-max-rate"
	flagShutdownTimeout = "shutdown-timeout"
	flagDebugMirror     = "debug-mirror"
	flagLampAdmitRate   = "lamp-admit-rate"
	flagStateInterval   = "state-interval"
	flagHADiscovery     = "ha-discovery"
	flagHAPrefix        = "ha-prefix"
	flagBrokerURL       = "broker-url"
	flagBrokerUser      = "broker-username"
	flagBrokerPassword  = "broker-password"
	flagBrokerCA        = "broker-ca"
	flagInstanceID      = "instance-id"
	flagBrokerKeepAlive = "broker-keepalive"
	flagBrokerBuffer    = "broker-buffer"
	flagLogLevel        = "log-level"
	flagLogFormat       = "log-format"
)

// envPrefix starts every environment variable lampgw reads.
const envPrefix = "LAMPGW_"

// Limits of --max-frame: below 16 bytes not even "HELLO <id>" fits for
// most ids; above 64 KiB a lamp's line is certainly garbage.
const (
	minMaxFrame = 16
	maxMaxFrame = 65536
)

// addrOff is accepted wherever an address is, as a spelling of "disabled"
// that survives environment variables (an empty LAMPGW_* counts as unset)
// and reads better in a config file than "".
const addrOff = "off"

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"auto", "json", "console"}
)

// config is every setting after flags, environment and config file have
// been merged.
type config struct {
	ConfigFile  string
	MQTTAddr    string
	WSAddr      string
	HTTPAddr    string
	BridgeAddr  string
	DataDir     string
	DataReset   bool // move a data dir that does not open aside
	TopicPrefix string
	MaxFrame    int
	DevicesFile string
	// UsersFile is the YAML file of MQTT users; "" means none.
	UsersFile string
	// TLS listeners, all off by default, and what they serve.
	MQTTSAddr     string
	WSSAddr       string
	HTTPSAddr     string
	BridgeTLSAddr string
	TLSCert       string
	TLSKey        string
	TLSClientCA   string
	// AllowAnonymous accepts anonymous MQTT clients from any address,
	// not only loopback.
	AllowAnonymous bool
	// Limits; see the flags' usage.
	RequireKnownDevices bool
	LampHandshake       time.Duration
	LampIdle            time.Duration
	MaxLamps            int
	MaxLampsPerAddr     int
	LampFrameRate       float64
	MaxPacketSize       int
	ConfirmTimeout      time.Duration
	CommandTTL          time.Duration
	LampMaxRate         float64
	ShutdownTimeout     time.Duration
	DebugMirror         bool
	LampAdmitRate       float64
	StateInterval       time.Duration
	LogLevel            string
	LogFormat           string // "auto": console on a terminal, else json
	// HADiscovery publishes Home Assistant MQTT discovery configs under
	// HAPrefix.
	HADiscovery bool
	HAPrefix    string
	// Cluster mode: an external broker instead of the embedded one.
	BrokerURL       string
	BrokerUser      string
	BrokerPassword  string
	BrokerCA        string
	InstanceID      string
	BrokerKeepAlive time.Duration
	BrokerBuffer    int
}

func defaultConfig() config {
	return config{
		MQTTAddr:        ":1883",
		WSAddr:          ":8083",
		HTTPAddr:        ":8080",
		BridgeAddr:      ":7000",
		DataDir:         "./data",
		TopicPrefix:     topics.DefaultPrefix,
		MaxFrame:        1024,
		LampHandshake:   10 * time.Second,
		MaxLamps:        10000,
		MaxLampsPerAddr: 256,
		LampFrameRate:   100,
		MaxPacketSize:   256 << 10,
		ConfirmTimeout:  5 * time.Second,
		CommandTTL:      24 * time.Hour,
		LampMaxRate:     20,
		ShutdownTimeout: shutdownTimeout,
		LampAdmitRate:   5000,
		StateInterval:   100 * time.Millisecond,
		HADiscovery:     true,
		HAPrefix:        hadiscovery.DefaultPrefix,
		LogLevel:        "info",
		LogFormat:       "auto",
		InstanceID:      defaultInstance(),
		BrokerKeepAlive: 30 * time.Second,
		BrokerBuffer:    10000,
	}
}

// newFlagSet binds every setting of cfg to a flag whose default is cfg's
// current value. The set is silent: callers print usage and errors.
func newFlagSet(cfg *config) *flag.FlagSet {
	flags := flag.NewFlagSet("lampgw", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	flags.StringVar(&cfg.ConfigFile, flagConfig, cfg.ConfigFile, "YAML `file` of settings; its keys are the flag names")
	flags.StringVar(&cfg.MQTTAddr, flagMQTTAddr, cfg.MQTTAddr, "MQTT listener `host:port`")
	flags.StringVar(&cfg.WSAddr, flagWSAddr, cfg.WSAddr, "MQTT over WebSocket listener `host:port`, path /mqtt")
	flags.StringVar(&cfg.HTTPAddr, flagHTTPAddr, cfg.HTTPAddr, "HTTP listener `host:port`: the API and dashboard, /healthz")
	flags.StringVar(&cfg.BridgeAddr, flagBridgeAddr, cfg.BridgeAddr, "legacy lamp raw-TCP listener `host:port`")
	flags.StringVar(&cfg.MQTTSAddr, flagMQTTSAddr, cfg.MQTTSAddr, "MQTT over TLS listener `host:port` (e.g. :8883); needs --tls-cert and --tls-key")
	flags.StringVar(&cfg.WSSAddr, flagWSSAddr, cfg.WSSAddr, "MQTT over WebSocket over TLS listener `host:port` (e.g. :8084), path /mqtt")
	flags.StringVar(&cfg.HTTPSAddr, flagHTTPSAddr, cfg.HTTPSAddr, "HTTPS listener `host:port` (e.g. :8443), the same handler as --http-addr")
	flags.StringVar(&cfg.BridgeTLSAddr, flagBridgeTLSAddr, cfg.BridgeTLSAddr, "legacy lamp listener over TLS `host:port` (e.g. :7443)")
	flags.StringVar(&cfg.TLSCert, flagTLSCert, cfg.TLSCert, "PEM `file`: the TLS listeners' certificate (chain); reloaded on SIGHUP")
	flags.StringVar(&cfg.TLSKey, flagTLSKey, cfg.TLSKey, "PEM `file`: the certificate's private key; reloaded on SIGHUP")
	flags.StringVar(&cfg.TLSClientCA, flagTLSClientCA, cfg.TLSClientCA, "PEM `file` of CA certificates; if set, every TLS client must present a certificate one of them signed (mutual TLS); reloaded on SIGHUP")
	flags.StringVar(&cfg.DataDir, flagDataDir, cfg.DataDir, "`dir` for retained messages, MQTT sessions and pending commands, created if missing")
	flags.BoolVar(&cfg.DataReset, flagDataReset, cfg.DataReset, "if --data-dir does not open (corrupt, unreadable), move it aside to <dir>.broken-<time> and start empty; a dir that opens is kept")
	flags.StringVar(&cfg.TopicPrefix, flagTopicPrefix, cfg.TopicPrefix, "first topic `levels` of every lamp topic")
	flags.IntVar(&cfg.MaxFrame, flagMaxFrame, cfg.MaxFrame, fmt.Sprintf("longest lamp frame in `bytes`, %d..%d", minMaxFrame, maxMaxFrame))
	flags.StringVar(&cfg.DevicesFile, flagDevices, cfg.DevicesFile, "YAML `file` of devices (dialed lamps, lamps known by address, brightness_max); reloaded on change and SIGHUP")
	flags.StringVar(&cfg.UsersFile, flagUsers, cfg.UsersFile, "YAML `file` of MQTT users (bcrypt hashes from \"lampgw passwd\", roles, lamps); with it clients must log in; reloaded on SIGHUP")
	flags.BoolVar(&cfg.AllowAnonymous, flagAllowAnon, cfg.AllowAnonymous, "accept anonymous MQTT, WebSocket and HTTP API clients from any address, not only loopback")
	flags.BoolVar(&cfg.RequireKnownDevices, flagRequireKnown, cfg.RequireKnownDevices, "refuse a lamp HELLO for an id that is not in the devices file")
	flags.DurationVar(&cfg.LampHandshake, flagLampHandshake, cfg.LampHandshake, "close a lamp connection that has not identified within this `duration`")
	flags.DurationVar(&cfg.LampIdle, flagLampIdle, cfg.LampIdle, "close a lamp that sends nothing for this `duration`; 0: never (TCP keepalive still finds dead lamps)")
	flags.IntVar(&cfg.MaxLamps, flagMaxLamps, cfg.MaxLamps, "most lamp connections open at once")
	flags.IntVar(&cfg.MaxLampsPerAddr, flagMaxLampsPerAddr, cfg.MaxLampsPerAddr, "most lamp connections from one IP address")
	flags.Float64Var(&cfg.LampFrameRate, flagLampFrameRate, cfg.LampFrameRate, "frames per `second` one lamp may send (bursts of twice that); faster lamps are read slower; 0: no limit")
	flags.IntVar(&cfg.MaxPacketSize, flagMaxPacketSize, cfg.MaxPacketSize, "largest MQTT packet a client may send, in `bytes`")
	flags.DurationVar(&cfg.ConfirmTimeout, flagConfirmTimeout, cfg.ConfirmTimeout, "a written command not confirmed by the lamp's report within this `duration` is acked unconfirmed")
	flags.DurationVar(&cfg.CommandTTL, flagCommandTTL, cfg.CommandTTL, "a command not written to its lamp within this `duration` is acked expired and dropped")
	flags.DurationVar(&cfg.StateInterval, flagStateInterval, cfg.StateInterval, "least `duration` between two publishes of one lamp's lamp/<id>/state: the first change goes at once, later ones within it are held and the latest goes when it ends; values on lamp/<id>/<key> always go at once; 0: every report")
	flags.Float64Var(&cfg.LampAdmitRate, flagLampAdmitRate, cfg.LampAdmitRate, "lamps per `second` that may identify, across all connections; more wait their turn (a fleet back from a power cut); 0: no limit")
	flags.BoolVar(&cfg.DebugMirror, flagDebugMirror, cfg.DebugMirror, "publish every lamp frame, both ways, on lampgw/debug/<id>/rx and /tx (tokens masked)")
	flags.DurationVar(&cfg.ShutdownTimeout, flagShutdownTimeout, cfg.ShutdownTimeout, "on SIGINT or SIGTERM, give lamps, apps and storage this `duration` to finish, then exit 1")
	flags.Float64Var(&cfg.LampMaxRate, flagLampMaxRate, cfg.LampMaxRate, "most command frames per `second` written to one lamp; faster commands are coalesced, the newest per key winning; 0: no limit")
	flags.BoolVar(&cfg.HADiscovery, flagHADiscovery, cfg.HADiscovery, "publish Home Assistant MQTT discovery configs for every lamp (--ha-discovery=false: none)")
	flags.StringVar(&cfg.HAPrefix, flagHAPrefix, cfg.HAPrefix, "Home Assistant's MQTT discovery `prefix`; its birth message is read on <prefix>/status")
	flags.StringVar(&cfg.BrokerURL, flagBrokerURL, cfg.BrokerURL, "external MQTT broker `url` (mqtt://host:1883, mqtts://, ws://, wss://): run as one instance of a cluster on it, with no embedded broker (see docs/scale-out.md)")
	flags.StringVar(&cfg.BrokerUser, flagBrokerUser, cfg.BrokerUser, "`user` name to log in to --broker-url")
	flags.StringVar(&cfg.BrokerPassword, flagBrokerPassword, cfg.BrokerPassword, "`password` to log in to --broker-url; prefer "+envName(flagBrokerPassword)+" to a flag that ps shows")
	flags.StringVar(&cfg.BrokerCA, flagBrokerCA, cfg.BrokerCA, "PEM `file` of CA certificates for an mqtts:// or wss:// --broker-url; default: the system's")
	flags.StringVar(&cfg.InstanceID, flagInstanceID, cfg.InstanceID, "this instance's `id` in the cluster: MQTT client lampgw-<id>, status lampgw/<id>/status; default: the host name")
	flags.DurationVar(&cfg.BrokerKeepAlive, flagBrokerKeepAlive, cfg.BrokerKeepAlive, "MQTT keep alive to --broker-url; a dead instance's lamps go offline within 1.5 times this `duration`")
	flags.IntVar(&cfg.BrokerBuffer, flagBrokerBuffer, cfg.BrokerBuffer, "publishes kept while --broker-url is unreachable (the latest per retained topic); past it the oldest are dropped and counted")
	flags.StringVar(&cfg.LogLevel, flagLogLevel, cfg.LogLevel, "`level`: "+strings.Join(logLevels, "|"))
	flags.StringVar(&cfg.LogFormat, flagLogFormat, cfg.LogFormat, "`format`: "+strings.Join(logFormats, "|")+"; auto is console on a terminal, else json")
	return flags
}

// envName is the environment variable of a flag (flagenv's rule, ff's).
func envName(flagName string) string { return flagenv.Name(envPrefix, flagName) }

// parseConfig merges args, the environment (through getenv) and the config
// file over the defaults and validates the result. Precedence is flag >
// environment > file > default. It returns flag.ErrHelp for -h/--help and
// otherwise an error of one line that starts with the setting it is about.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	cfg := defaultConfig()
	flags := newFlagSet(&cfg)

	// ff v3 reads the environment only through os.Getenv, which would make
	// this function depend on process state and its tests serial. So the
	// environment is applied here, first, by ff's naming rule. That keeps
	// ff's precedence: Set marks a flag as set, ff's file step skips
	// flags already set (env > file), and ff parses args after this
	// (flag > env).
	envErr := flagenv.Apply(flags, envPrefix, getenv)

	err := ff.Parse(flags, args,
		ff.WithConfigFileFlag(flagConfig),
		ff.WithConfigFileParser(yamlParser(flags)),
	)
	var (
		fileErr *configFileError
		pathErr *fs.PathError
	)
	switch {
	case err == nil && envErr == nil:
	case errors.Is(err, flag.ErrHelp):
		// Help is shown even when the environment is broken: that is
		// when it is most wanted.
		return config{}, flag.ErrHelp
	case envErr != nil:
		return config{}, envErr
	case errors.As(err, &fileErr), errors.As(err, &pathErr):
		// ff returns os.Open's error as it is and our parser's as it is.
		return config{}, fmt.Errorf("%s %q: %v", flagConfig, cfg.ConfigFile, err)
	default:
		// ff wraps the flag package's error in "error parsing commandline
		// arguments: %w"; the flag package's own text names the flag.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return config{}, err
	}
	if flags.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: lampgw takes only flags", flags.Arg(0))
	}

	if cfg.BrokerURL != "" {
		// The embedded broker's settings have defaults; with an external
		// broker only those given on purpose are an error (gateway.New).
		set := map[string]bool{}
		flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]*string{flagMQTTAddr: &cfg.MQTTAddr, flagWSAddr: &cfg.WSAddr, flagDataDir: &cfg.DataDir} {
			if !set[name] {
				*v = ""
			}
		}
	}
	for _, addr := range []*string{&cfg.MQTTAddr, &cfg.WSAddr, &cfg.HTTPAddr, &cfg.BridgeAddr,
		&cfg.MQTTSAddr, &cfg.WSSAddr, &cfg.HTTPSAddr, &cfg.BridgeTLSAddr} {
		if strings.EqualFold(*addr, addrOff) {
			*addr = ""
		}
	}
	cfg.LogLevel = strings.ToLower(cfg.LogLevel)
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	if err := cfg.validate(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// validate checks what the flag package cannot: ranges, enums and shapes.
func (c config) validate() error {
	for _, a := range []struct{ name, value string }{
		{flagMQTTAddr, c.MQTTAddr},
		{flagWSAddr, c.WSAddr},
		{flagHTTPAddr, c.HTTPAddr},
		{flagBridgeAddr, c.BridgeAddr},
		{flagMQTTSAddr, c.MQTTSAddr},
		{flagWSSAddr, c.WSSAddr},
		{flagHTTPSAddr, c.HTTPSAddr},
		{flagBridgeTLSAddr, c.BridgeTLSAddr},
	} {
		if a.value == "" {
			continue
		}
		_, port, err := net.SplitHostPort(a.value)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("%s: must be host:port with a numeric port (like \":1883\"), or empty or %q to disable; got %q", a.name, addrOff, a.value)
		}
	}
	if c.MaxFrame < minMaxFrame || c.MaxFrame > maxMaxFrame {
		return fmt.Errorf("%s: must be between %d and %d, got %d", flagMaxFrame, minMaxFrame, maxMaxFrame, c.MaxFrame)
	}
	if topics.CheckPrefix(c.TopicPrefix) != nil {
		return fmt.Errorf("%s: must be one or more non-empty topic levels without + or # and not starting with $, got %q", flagTopicPrefix, c.TopicPrefix)
	}
	for _, r := range []struct {
		name      string
		v, lo, hi int64
	}{
		{flagMaxLamps, int64(c.MaxLamps), 1, 1_000_000},
		{flagMaxLampsPerAddr, int64(c.MaxLampsPerAddr), 1, 1_000_000},
		{flagMaxPacketSize, int64(c.MaxPacketSize), 1 << 10, 256 << 20},
	} {
		if r.v < r.lo || r.v > r.hi {
			return fmt.Errorf("%s: must be between %d and %d, got %d", r.name, r.lo, r.hi, r.v)
		}
	}
	if c.LampHandshake < time.Second || c.LampHandshake > 10*time.Minute {
		return fmt.Errorf("%s: must be between 1s and 10m, got %v", flagLampHandshake, c.LampHandshake)
	}
	if c.LampIdle != 0 && c.LampIdle < 10*time.Second {
		return fmt.Errorf("%s: must be 0 (never) or at least 10s, got %v", flagLampIdle, c.LampIdle)
	}
	if c.ConfirmTimeout < 100*time.Millisecond || c.ConfirmTimeout > time.Hour {
		return fmt.Errorf("%s: must be between 100ms and 1h, got %v", flagConfirmTimeout, c.ConfirmTimeout)
	}
	if c.CommandTTL < time.Second || c.CommandTTL > 365*24*time.Hour {
		return fmt.Errorf("%s: must be between 1s and 8760h, got %v", flagCommandTTL, c.CommandTTL)
	}
	if c.ShutdownTimeout < 100*time.Millisecond || c.ShutdownTimeout > 10*time.Minute {
		return fmt.Errorf("%s: must be between 100ms and 10m, got %v", flagShutdownTimeout, c.ShutdownTimeout)
	}
	if c.StateInterval < 0 || c.StateInterval > time.Minute {
		return fmt.Errorf("%s: must be between 0 (every report) and 1m, got %v", flagStateInterval, c.StateInterval)
	}
	if c.LampAdmitRate < 0 || c.LampAdmitRate > 1000000 {
		return fmt.Errorf("%s: must be between 0 (no limit) and 1000000, got %v", flagLampAdmitRate, c.LampAdmitRate)
	}
	if c.LampMaxRate < 0 || c.LampMaxRate > 10000 {
		return fmt.Errorf("%s: must be between 0 (no limit) and 10000, got %v", flagLampMaxRate, c.LampMaxRate)
	}
	if c.LampFrameRate < 0 || c.LampFrameRate > 100000 {
		return fmt.Errorf("%s: must be between 0 (no limit) and 100000, got %v", flagLampFrameRate, c.LampFrameRate)
	}
	if c.BrokerURL != "" {
		u, err := url.Parse(c.BrokerURL)
		if err != nil || u.Host == "" || !slices.Contains([]string{"mqtt", "mqtts", "tcp", "ssl", "ws", "wss"}, u.Scheme) {
			return fmt.Errorf("%s: must be mqtt://host:port, mqtts://, ws:// or wss://, got %q", flagBrokerURL, redactURL(c.BrokerURL))
		}
		if err := cluster.CheckInstance(c.InstanceID); err != nil {
			return fmt.Errorf("%s: must be 1 to 64 of A-Z a-z 0-9 _ - and not a reserved word, got %q", flagInstanceID, c.InstanceID)
		}
	}
	if c.BrokerKeepAlive < time.Second || c.BrokerKeepAlive > time.Hour {
		return fmt.Errorf("%s: must be between 1s and 1h, got %v", flagBrokerKeepAlive, c.BrokerKeepAlive)
	}
	if c.BrokerBuffer < 0 || c.BrokerBuffer > 10_000_000 {
		return fmt.Errorf("%s: must be between 0 and 10000000, got %d", flagBrokerBuffer, c.BrokerBuffer)
	}
	if err := oneOf(flagLogLevel, c.LogLevel, logLevels); err != nil {
		return err
	}
	return oneOf(flagLogFormat, c.LogFormat, logFormats)
}

func oneOf(name, value string, allowed []string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return fmt.Errorf("%s: must be one of %s, got %q", name, strings.Join(allowed, ", "), value)
}

// maxConfigSize bounds the config file; a real one is well under 1 KiB.
const maxConfigSize = 1 << 20

// configFileError is a problem inside the config file, as opposed to one
// opening it; its text already says where.
type configFileError struct{ err error }

func (e *configFileError) Error() string { return e.err.Error() }
func (e *configFileError) Unwrap() error { return e.err }

func fileErrorf(format string, args ...any) error {
	return &configFileError{fmt.Errorf(format, args...)}
}

// yamlParser returns an ff.ConfigFileParser for a flat YAML mapping of
// flag name to scalar value. It is stricter than ff's ffyaml, which this
// replaces: a key that is not a flag, a list or mapping value, a repeated
// key or a second document is an error with its line number, where ffyaml
// would accept env-style keys and flatten lists into repeated sets. It
// also reads YAML 1.2 (gopkg.in/yaml.v3, already a dependency), where
// `mqtt-addr: off` is the string "off"; ffyaml's yaml.v2 would turn it
// into "false".
func yamlParser(flags *flag.FlagSet) ff.ConfigFileParser {
	return func(r io.Reader, set func(name, value string) error) error {
		data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
		if err != nil {
			return &configFileError{err}
		}
		if len(data) > maxConfigSize {
			return fileErrorf("larger than %d bytes", maxConfigSize)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return nil // empty or only comments: sets nothing
		} else if err != nil {
			return &configFileError{err}
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return fileErrorf("want one YAML document, found more")
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return nil
		}
		if root.Kind != yaml.MappingNode {
			return fileErrorf("line %d: want a mapping of setting: value", root.Line)
		}
		seen := make(map[string]bool)
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			name := k.Value
			if flags.Lookup(name) == nil || name == flagConfig {
				return fileErrorf("line %d: unknown key %q (keys are the flag names, like %q)", k.Line, name, flagMQTTAddr)
			}
			if seen[name] {
				return fileErrorf("line %d: %s: set twice", k.Line, name)
			}
			seen[name] = true
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			if v.Kind != yaml.ScalarNode {
				return fileErrorf("line %d: %s: want a single value, not a list or mapping", v.Line, name)
			}
			value := v.Value
			if v.Tag == "!!null" {
				value = "" // `ws-addr:` or `ws-addr: ~` disables, like `ws-addr: ""`
			}
			if err := set(name, value); err != nil {
				// ff wraps the flag's own error in "error setting flag %q
				// from config file: %w"; we say that better ourselves.
				if inner := errors.Unwrap(err); inner != nil {
					err = inner
				}
				return fileErrorf("line %d: %s: invalid value %q: %v", v.Line, name, value, err)
			}
		}
		return nil
	}
}

// printUsage writes the help text: every setting with its three spellings.
func printUsage(w io.Writer) {
	cfg := defaultConfig()
	flags := newFlagSet(&cfg)
	fmt.Fprint(w, `Usage: lampgw [flags]
       lampgw healthcheck [flags]
       lampgw passwd [--role admin|app|viewer] <user>
       lampgw lamps [-u user] [-p password] [flags]
       lampgw version

lampgw is an MQTT broker with a bridge for legacy raw-TCP lamps.

Every flag can also be set by an environment variable (LAMPGW_ + the flag in
upper snake case) or by a key in the YAML file given by --config (the flag
name: "mqtt-addr: ':1883'"). A flag beats the environment, which beats the
file. An empty address, or "off", disables that listener.

"lampgw healthcheck" reads the same settings and probes the running lampgw:
GET /healthz on --http-addr (on 127.0.0.1 when that has no host or listens
on every interface), for Docker's HEALTHCHECK. It exits 0 on 200 OK, else 1
with the reason on stderr.

"lampgw passwd <user>" reads a password (twice, without echo, on a
terminal; one line from a pipe) and prints the user's entry for the --users
file: - {name: "<user>", role: app, hash: "$2a$10$..."}.

`)
	flagenv.PrintTable(w, flags, envPrefix)
}

// defaultInstance is the host name made a valid instance id: other
// characters (the dots of a domain) become '-', cut to 64.
func defaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "lampgw"
	}
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	id := string(b[:min(len(b), 64)])
	if cluster.CheckInstance(id) != nil {
		return "lampgw-" + id[:min(len(id), 57)]
	}
	return id
}

// redactURL hides a password in a URL for an error message.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if strings.Contains(raw, "@") {
		return "(unparsable URL with credentials)"
	}
	return raw
}
