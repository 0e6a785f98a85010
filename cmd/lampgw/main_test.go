package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// configCase is one parseConfig input. "$CONFIG" in args, env values and
// want strings stands for a config file path in a fresh temp dir; the file
// is written only when file is not empty; "$DIR" stands for that dir.
type configCase struct {
	name string
	args []string
	env  map[string]string
	file string
}

// prepare writes tc's config file and returns its args, a getenv over its
// env, and the function that expands "$CONFIG".
func (tc configCase) prepare(t *testing.T) (args []string, getenv func(string) string, expand func(string) string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lampgw.yaml")
	if tc.file != "" {
		if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expand = strings.NewReplacer("$CONFIG", path, "$DIR", dir).Replace
	for _, a := range tc.args {
		args = append(args, expand(a))
	}
	env := make(map[string]string, len(tc.env))
	for k, v := range tc.env {
		env[k] = expand(v)
	}
	return args, func(k string) string { return env[k] }, expand
}

func TestParseConfigPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		configCase
		want func(c *config) // applied to defaultConfig()
	}{
		{
			configCase: configCase{name: "defaults"},
			want:       func(c *config) {},
		},
		{
			configCase: configCase{
				name: "file over default",
				args: []string{"--config", "$CONFIG"},
				file: "mqtt-addr: \":1884\"\nmax-frame: 2048\ntopic-prefix: home/lamps\nlog-level: warn\n",
			},
			want: func(c *config) {
				c.ConfigFile = "$CONFIG"
				c.MQTTAddr, c.MaxFrame, c.TopicPrefix, c.LogLevel = ":1884", 2048, "home/lamps", "warn"
			},
		},
		{
			configCase: configCase{
				name: "env over file",
				args: []string{"--config", "$CONFIG"},
				env:  map[string]string{"LAMPGW_MQTT_ADDR": ":1885", "LAMPGW_MAX_FRAME": "512"},
				file: "mqtt-addr: \":1884\"\nmax-frame: 2048\n",
			},
			want: func(c *config) { c.ConfigFile, c.MQTTAddr, c.MaxFrame = "$CONFIG", ":1885", 512 },
		},
		{
			configCase: configCase{
				name: "flag over env over file",
				args: []string{"--config", "$CONFIG", "--mqtt-addr", ":1886"},
				env:  map[string]string{"LAMPGW_MQTT_ADDR": ":1885", "LAMPGW_WS_ADDR": ":8085"},
				file: "mqtt-addr: \":1884\"\nws-addr: \":8084\"\nhttp-addr: \":8084\"\n",
			},
			want: func(c *config) {
				c.ConfigFile = "$CONFIG"
				c.MQTTAddr, c.WSAddr, c.HTTPAddr = ":1886", ":8085", ":8084"
			},
		},
		{
			configCase: configCase{
				name: "flag over env without a file",
				args: []string{"-max-frame=100", "--log-level", "error"},
				env:  map[string]string{"LAMPGW_MAX_FRAME": "200", "LAMPGW_LOG_LEVEL": "debug"},
			},
			want: func(c *config) { c.MaxFrame, c.LogLevel = 100, "error" },
		},
		{
			configCase: configCase{
				name: "config file named by env",
				env:  map[string]string{"LAMPGW_CONFIG": "$CONFIG"},
				file: "bridge-addr: 127.0.0.1:7001\n",
			},
			want: func(c *config) { c.ConfigFile, c.BridgeAddr = "$CONFIG", "127.0.0.1:7001" },
		},
		{
			configCase: configCase{
				name: "every env name",
				env: map[string]string{
					"LAMPGW_MQTT_ADDR":              "127.0.0.1:1",
					"LAMPGW_WS_ADDR":                "127.0.0.1:2",
					"LAMPGW_HTTP_ADDR":              "127.0.0.1:3",
					"LAMPGW_BRIDGE_ADDR":            "127.0.0.1:4",
					"LAMPGW_DATA_DIR":               "/var/lib/lampgw",
					"LAMPGW_TOPIC_PREFIX":           "home/lamp",
					"LAMPGW_MAX_FRAME":              "16",
					"LAMPGW_LOG_LEVEL":              "warn",
					"LAMPGW_LOG_FORMAT":             "json",
					"LAMPGW_DEVICES":                "/etc/lampgw/devices.yaml",
					"LAMPGW_ALLOW_ANONYMOUS":        "true",
					"LAMPGW_REQUIRE_KNOWN_DEVICES":  "1",
					"LAMPGW_LAMP_HANDSHAKE_TIMEOUT": "5s",
					"LAMPGW_LAMP_IDLE_TIMEOUT":      "10m",
					"LAMPGW_MAX_LAMPS":              "50",
					"LAMPGW_MAX_LAMPS_PER_ADDR":     "5",
					"LAMPGW_LAMP_FRAME_RATE":        "2.5",
					"LAMPGW_MAX_PACKET_SIZE":        "1024",
					"LAMPGW_CONFIRM_TIMEOUT":        "2s",
					"LAMPGW_COMMAND_TTL":            "1h",
					"LAMPGW_LAMP_MAX_RATE":          "5",
					"LAMPGW_SHUTDOWN_TIMEOUT":       "9s",
					"LAMPGW_LAMP_ADMIT_RATE":        "50",
					"LAMPGW_MQTTS_ADDR":             "127.0.0.1:5",
					"LAMPGW_WSS_ADDR":               "127.0.0.1:6",
					"LAMPGW_HTTPS_ADDR":             "127.0.0.1:7",
					"LAMPGW_BRIDGE_TLS_ADDR":        "127.0.0.1:8",
					"LAMPGW_TLS_CERT":               "/etc/lampgw/cert.pem",
					"LAMPGW_TLS_KEY":                "/etc/lampgw/key.pem",
					"LAMPGW_TLS_CLIENT_CA":          "/etc/lampgw/ca.pem",
					"LAMPGW_HA_DISCOVERY":           "false",
					"LAMPGW_HA_PREFIX":              "ha",
					"LAMPGW_BROKER_URL":             "mqtt://emqx:1883",
					"LAMPGW_BROKER_USERNAME":        "gw",
					"LAMPGW_BROKER_PASSWORD":        "s3cret",
					"LAMPGW_BROKER_CA":              "/etc/lampgw/broker-ca.pem",
					"LAMPGW_INSTANCE_ID":            "gw-1",
					"LAMPGW_BROKER_KEEPALIVE":       "10s",
					"LAMPGW_BROKER_BUFFER":          "5",
					"LAMPGW_STATE_INTERVAL":         "0s",
				},
			},
			want: func(c *config) {
				*c = config{
					MQTTAddr: "127.0.0.1:1", WSAddr: "127.0.0.1:2", HTTPAddr: "127.0.0.1:3", BridgeAddr: "127.0.0.1:4",
					DataDir: "/var/lib/lampgw", TopicPrefix: "home/lamp", MaxFrame: 16, LogLevel: "warn", LogFormat: "json",
					DevicesFile: "/etc/lampgw/devices.yaml", AllowAnonymous: true,
					RequireKnownDevices: true, LampHandshake: 5 * time.Second, LampIdle: 10 * time.Minute,
					MaxLamps: 50, MaxLampsPerAddr: 5, LampFrameRate: 2.5, MaxPacketSize: 1024,
					ConfirmTimeout: 2 * time.Second, CommandTTL: time.Hour, LampMaxRate: 5, ShutdownTimeout: 9 * time.Second, LampAdmitRate: 50,
					MQTTSAddr: "127.0.0.1:5", WSSAddr: "127.0.0.1:6", HTTPSAddr: "127.0.0.1:7", BridgeTLSAddr: "127.0.0.1:8",
					TLSCert: "/etc/lampgw/cert.pem", TLSKey: "/etc/lampgw/key.pem", TLSClientCA: "/etc/lampgw/ca.pem",
					HADiscovery: false, HAPrefix: "ha",
					BrokerURL: "mqtt://emqx:1883", BrokerUser: "gw", BrokerPassword: "s3cret", BrokerCA: "/etc/lampgw/broker-ca.pem",
					InstanceID: "gw-1", BrokerKeepAlive: 10 * time.Second, BrokerBuffer: 5, StateInterval: 0,
				}
			},
		},
		{
			configCase: configCase{
				name: "every file key",
				args: []string{"--config", "$CONFIG"},
				file: `# all settings
mqtt-addr: 127.0.0.1:1
ws-addr: "127.0.0.1:2"
http-addr: '127.0.0.1:3'
bridge-addr: 127.0.0.1:4
data-dir: /var/lib/lampgw
topic-prefix: home/lamp
max-frame: 65536
log-level: debug
log-format: console
devices: devices.yaml
allow-anonymous: true
require-known-devices: true
lamp-handshake-timeout: 30s
lamp-idle-timeout: 1h
max-lamps: 100
max-lamps-per-addr: 10
lamp-frame-rate: 0
max-packet-size: 65536
confirm-timeout: 500ms
command-ttl: 48h
lamp-max-rate: 0
shutdown-timeout: 30s
lamp-admit-rate: 0
mqtts-addr: 127.0.0.1:5
wss-addr: 127.0.0.1:6
https-addr: 127.0.0.1:7
bridge-tls-addr: 127.0.0.1:8
tls-cert: cert.pem
tls-key: key.pem
tls-client-ca: ca.pem
ha-discovery: false
ha-prefix: home/ha
broker-url: mqtts://emqx:8883
broker-username: gw
broker-password: s3cret
broker-ca: broker-ca.pem
instance-id: gw_2
broker-keepalive: 1m
broker-buffer: 0
state-interval: 250ms
`,
			},
			want: func(c *config) {
				*c = config{
					ConfigFile: "$CONFIG",
					MQTTAddr:   "127.0.0.1:1", WSAddr: "127.0.0.1:2", HTTPAddr: "127.0.0.1:3", BridgeAddr: "127.0.0.1:4",
					DataDir: "/var/lib/lampgw", TopicPrefix: "home/lamp", MaxFrame: 65536, LogLevel: "debug", LogFormat: "console",
					DevicesFile: "devices.yaml", AllowAnonymous: true,
					RequireKnownDevices: true, LampHandshake: 30 * time.Second, LampIdle: time.Hour,
					MaxLamps: 100, MaxLampsPerAddr: 10, LampFrameRate: 0, MaxPacketSize: 65536,
					ConfirmTimeout: 500 * time.Millisecond, CommandTTL: 48 * time.Hour, LampMaxRate: 0, ShutdownTimeout: 30 * time.Second, LampAdmitRate: 0,
					MQTTSAddr: "127.0.0.1:5", WSSAddr: "127.0.0.1:6", HTTPSAddr: "127.0.0.1:7", BridgeTLSAddr: "127.0.0.1:8",
					TLSCert: "cert.pem", TLSKey: "key.pem", TLSClientCA: "ca.pem",
					HADiscovery: false, HAPrefix: "home/ha",
					BrokerURL: "mqtts://emqx:8883", BrokerUser: "gw", BrokerPassword: "s3cret", BrokerCA: "broker-ca.pem",
					InstanceID: "gw_2", BrokerKeepAlive: time.Minute, BrokerBuffer: 0, StateInterval: 250 * time.Millisecond,
				}
			},
		},
		{
			configCase: configCase{
				name: "empty, null and off disable listeners",
				args: []string{"--config", "$CONFIG", "--bridge-addr=off", "--https-addr=off"},
				env:  map[string]string{"LAMPGW_MQTT_ADDR": "OFF", "LAMPGW_MQTTS_ADDR": "off"},
				file: "ws-addr: \"\"\nhttp-addr:\nwss-addr: off\n",
			},
			want: func(c *config) {
				c.ConfigFile, c.MQTTAddr, c.WSAddr, c.HTTPAddr, c.BridgeAddr = "$CONFIG", "", "", "", ""
			},
		},
		{
			// The embedded broker's defaults give way to an external
			// broker; what is given on purpose stays, for gateway.New to
			// refuse with its reason.
			configCase: configCase{name: "broker-url clears the embedded broker's defaults",
				args: []string{"--broker-url", "mqtt://127.0.0.1:1883", "--ws-addr", ":9001"}},
			want: func(c *config) {
				c.BrokerURL, c.MQTTAddr, c.WSAddr, c.DataDir = "mqtt://127.0.0.1:1883", "", ":9001", ""
			},
		},
		{
			configCase: configCase{name: "empty flag disables", args: []string{"--ws-addr="}},
			want:       func(c *config) { c.WSAddr = "" },
		},
		{
			// getenv cannot tell unset from empty, and neither can ff.
			configCase: configCase{name: "empty env is unset", env: map[string]string{"LAMPGW_MQTT_ADDR": ""}},
			want:       func(c *config) {},
		},
		{
			configCase: configCase{
				name: "log level and format ignore case",
				args: []string{"--log-format", "Console"},
				env:  map[string]string{"LAMPGW_LOG_LEVEL": "DEBUG"},
			},
			want: func(c *config) { c.LogLevel, c.LogFormat = "debug", "console" },
		},
		{
			configCase: configCase{name: "file of only comments", args: []string{"--config", "$CONFIG"}, file: "# nothing yet\n"},
			want:       func(c *config) { c.ConfigFile = "$CONFIG" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args, getenv, expand := tc.prepare(t)
			want := defaultConfig()
			tc.want(&want)
			want.ConfigFile = expand(want.ConfigFile)
			got, err := parseConfig(args, getenv)
			if err != nil {
				t.Fatalf("parseConfig(%q): got error %v, want nil", args, err)
			}
			if got != want {
				t.Errorf("parseConfig(%q):\ngot  %+v\nwant %+v", args, got, want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		configCase
		setting string // the error must name it
		want    string // the error text, or its start when it ends in "..."
	}{
		{
			configCase: configCase{name: "broker-url not a URL", args: []string{"--broker-url", "emqx:1883"}},
			setting:    "broker-url",
			want:       `broker-url: must be mqtt://host:port, mqtts://, ws:// or wss://, got "emqx:1883"`,
		},
		{
			configCase: configCase{name: "broker-url password not shown", args: []string{"--broker-url", "http://u:hunter2@emqx:1883"}},
			setting:    "broker-url",
			want:       `broker-url: must be mqtt://host:port, mqtts://, ws:// or wss://, got "http://u:xxxxx@emqx:1883"`,
		},
		{
			configCase: configCase{name: "instance-id with a slash", args: []string{"--broker-url", "mqtt://emqx:1883", "--instance-id", "a/b"}},
			setting:    "instance-id",
			want:       `instance-id: must be 1 to 64 of A-Z a-z 0-9 _ - and not a reserved word, got "a/b"`,
		},
		{
			configCase: configCase{name: "instance-id reserved", args: []string{"--broker-url", "mqtt://emqx:1883", "--instance-id", "holders"}},
			setting:    "instance-id",
			want:       `instance-id: must be 1 to 64 of A-Z a-z 0-9 _ - and not a reserved word, got "holders"`,
		},
		{
			configCase: configCase{name: "state-interval negative", args: []string{"--state-interval", "-1s"}},
			setting:    "state-interval",
			want:       `state-interval: must be between 0 (every report) and 1m, got -1s`,
		},
		{
			configCase: configCase{name: "broker-keepalive too short", args: []string{"--broker-keepalive", "100ms"}},
			setting:    "broker-keepalive",
			want:       `broker-keepalive: must be between 1s and 1h, got 100ms`,
		},
		{
			configCase: configCase{name: "max-frame too small", args: []string{"--max-frame", "5"}},
			setting:    "max-frame",
			want:       "max-frame: must be between 16 and 65536, got 5",
		},
		{
			configCase: configCase{name: "max-frame too large in env", env: map[string]string{"LAMPGW_MAX_FRAME": "65537"}},
			setting:    "max-frame",
			want:       "max-frame: must be between 16 and 65536, got 65537",
		},
		{
			configCase: configCase{name: "max-frame not a number", args: []string{"--max-frame", "1k"}},
			setting:    "max-frame",
			want:       `invalid value "1k" for flag -max-frame: parse error`,
		},
		{
			configCase: configCase{name: "max-frame not a number in env", env: map[string]string{"LAMPGW_MAX_FRAME": "1k"}},
			setting:    "max-frame",
			want:       `max-frame: invalid value "1k" in LAMPGW_MAX_FRAME: parse error`,
		},
		{
			configCase: configCase{name: "max-frame not a number in file", args: []string{"--config", "$CONFIG"}, file: "max-frame: 1k\n"},
			setting:    "max-frame",
			want:       `config "$CONFIG": line 1: max-frame: invalid value "1k": parse error`,
		},
		{
			configCase: configCase{name: "allow-anonymous not a bool in env", env: map[string]string{"LAMPGW_ALLOW_ANONYMOUS": "maybe"}},
			setting:    "allow-anonymous",
			want:       `allow-anonymous: invalid value "maybe" in LAMPGW_ALLOW_ANONYMOUS: parse error`,
		},
		{
			configCase: configCase{name: "lamp-idle-timeout too short", args: []string{"--lamp-idle-timeout", "1s"}},
			setting:    "lamp-idle-timeout",
			want:       "lamp-idle-timeout: must be 0 (never) or at least 10s, got 1s",
		},
		{
			configCase: configCase{name: "lamp-handshake-timeout zero", args: []string{"--lamp-handshake-timeout", "0"}},
			setting:    "lamp-handshake-timeout",
			want:       "lamp-handshake-timeout: must be between 1s and 10m, got 0s",
		},
		{
			configCase: configCase{name: "max-lamps zero", env: map[string]string{"LAMPGW_MAX_LAMPS": "0"}},
			setting:    "max-lamps",
			want:       "max-lamps: must be between 1 and 1000000, got 0",
		},
		{
			configCase: configCase{name: "max-packet-size tiny", args: []string{"--max-packet-size", "10"}},
			setting:    "max-packet-size",
			want:       "max-packet-size: must be between 1024 and 268435456, got 10",
		},
		{
			configCase: configCase{name: "lamp-frame-rate negative", args: []string{"--lamp-frame-rate", "-1"}},
			setting:    "lamp-frame-rate",
			want:       "lamp-frame-rate: must be between 0 (no limit) and 100000, got -1",
		},
		{
			configCase: configCase{name: "confirm-timeout tiny", args: []string{"--confirm-timeout", "1ms"}},
			setting:    "confirm-timeout",
			want:       "confirm-timeout: must be between 100ms and 1h, got 1ms",
		},
		{
			configCase: configCase{name: "command-ttl zero", env: map[string]string{"LAMPGW_COMMAND_TTL": "0s"}},
			setting:    "command-ttl",
			want:       "command-ttl: must be between 1s and 8760h, got 0s",
		},
		{
			configCase: configCase{name: "lamp-max-rate negative", args: []string{"--lamp-max-rate", "-2"}},
			setting:    "lamp-max-rate",
			want:       "lamp-max-rate: must be between 0 (no limit) and 10000, got -2",
		},
		{
			configCase: configCase{name: "bad log-level", args: []string{"--log-level", "loud"}},
			setting:    "log-level",
			want:       `log-level: must be one of debug, info, warn, error, got "loud"`,
		},
		{
			configCase: configCase{name: "bad log-format in env", env: map[string]string{"LAMPGW_LOG_FORMAT": "xml"}},
			setting:    "log-format",
			want:       `log-format: must be one of auto, json, console, got "xml"`,
		},
		{
			configCase: configCase{name: "address without port", args: []string{"--mqtt-addr", "1883"}},
			setting:    "mqtt-addr",
			want:       `mqtt-addr: must be host:port with a numeric port (like ":1883"), or empty or "off" to disable; got "1883"`,
		},
		{
			configCase: configCase{name: "address with a named port", args: []string{"--bridge-addr", ":lamp"}},
			setting:    "bridge-addr",
			want:       `bridge-addr: must be host:port...`,
		},
		{
			configCase: configCase{name: "TLS address without port", env: map[string]string{"LAMPGW_MQTTS_ADDR": "8883"}},
			setting:    "mqtts-addr",
			want:       `mqtts-addr: must be host:port...`,
		},
		{
			configCase: configCase{name: "topic prefix with a wildcard", args: []string{"--topic-prefix", "lamp/#"}},
			setting:    "topic-prefix",
			want:       `topic-prefix: must be one or more non-empty topic levels without + or # and not starting with $, got "lamp/#"`,
		},
		{
			configCase: configCase{name: "unknown flag", args: []string{"--mqtt-port", "1883"}},
			setting:    "mqtt-port",
			want:       "flag provided but not defined: -mqtt-port",
		},
		{
			configCase: configCase{name: "flag without its value", args: []string{"--mqtt-addr"}},
			setting:    "mqtt-addr",
			want:       "flag needs an argument: -mqtt-addr",
		},
		{
			configCase: configCase{name: "positional argument", args: []string{"serve"}},
			setting:    "serve",
			want:       `unexpected argument "serve": lampgw takes only flags`,
		},
		{
			configCase: configCase{name: "missing config file", args: []string{"--config", "$CONFIG"}},
			setting:    "config",
			want:       `config "$CONFIG": open $CONFIG: no such file or directory`,
		},
		{
			configCase: configCase{name: "config file is a directory", args: []string{"--config", "$DIR"}},
			setting:    "config",
			want:       `config "$DIR": read $DIR: is a directory`,
		},
		{
			configCase: configCase{name: "unknown key in config file", args: []string{"--config", "$CONFIG"}, file: "mqtt-addr: \":1884\"\nmqtt_port: 1884\n"},
			setting:    "mqtt_port",
			want:       `config "$CONFIG": line 2: unknown key "mqtt_port" (keys are the flag names, like "mqtt-addr")`,
		},
		{
			configCase: configCase{name: "env-style key in config file", args: []string{"--config", "$CONFIG"}, file: "MQTT_ADDR: \":1884\"\n"},
			setting:    "MQTT_ADDR",
			want:       `config "$CONFIG": line 1: unknown key "MQTT_ADDR" (keys are the flag names, like "mqtt-addr")`,
		},
		{
			configCase: configCase{name: "config key in config file", env: map[string]string{"LAMPGW_CONFIG": "$CONFIG"}, file: "config: other.yaml\n"},
			setting:    "config",
			want:       `config "$CONFIG": line 1: unknown key "config" (keys are the flag names, like "mqtt-addr")`,
		},
		{
			configCase: configCase{name: "bad YAML", args: []string{"--config", "$CONFIG"}, file: "mqtt-addr: [\":1883\"\n"},
			setting:    "config",
			want:       `config "$CONFIG": yaml: line ...`,
		},
		{
			configCase: configCase{name: "list value", args: []string{"--config", "$CONFIG"}, file: "mqtt-addr:\n  - \":1883\"\n  - \":1884\"\n"},
			setting:    "mqtt-addr",
			want:       `config "$CONFIG": line 2: mqtt-addr: want a single value, not a list or mapping`,
		},
		{
			configCase: configCase{name: "nested mapping", args: []string{"--config", "$CONFIG"}, file: "mqtt:\n  addr: \":1883\"\n"},
			setting:    "mqtt",
			want:       `config "$CONFIG": line 1: unknown key "mqtt" (keys are the flag names, like "mqtt-addr")`,
		},
		{
			configCase: configCase{name: "key set twice", args: []string{"--config", "$CONFIG"}, file: "ws-addr: \":1\"\nws-addr: \":2\"\n"},
			setting:    "ws-addr",
			want:       `config "$CONFIG": line 2: ws-addr: set twice`,
		},
		{
			configCase: configCase{name: "file is a list", args: []string{"--config", "$CONFIG"}, file: "- mqtt-addr\n"},
			setting:    "config",
			want:       `config "$CONFIG": line 1: want a mapping of setting: value`,
		},
		{
			configCase: configCase{name: "two documents", args: []string{"--config", "$CONFIG"}, file: "ws-addr: \":1\"\n---\nws-addr: \":2\"\n"},
			setting:    "config",
			want:       `config "$CONFIG": want one YAML document, found more`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args, getenv, expand := tc.prepare(t)
			want := expand(tc.want)
			match := func(got string) bool { return got == want }
			if prefix, ok := strings.CutSuffix(want, "..."); ok {
				match = func(got string) bool { return strings.HasPrefix(got, prefix) }
			}

			_, err := parseConfig(args, getenv)
			if err == nil {
				t.Fatalf("parseConfig(%q): got nil error, want %q", args, want)
			}
			msg := err.Error()
			if !match(msg) {
				t.Errorf("parseConfig(%q) error:\ngot  %s\nwant %s", args, msg, want)
			}
			if !strings.Contains(msg, tc.setting) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: got no mention of %q on one line, want it", msg, tc.setting)
			}

			// The binary says the same thing, once, and exits 2.
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), args, getenv, &stdout, &stderr)
			if code != 2 {
				t.Errorf("run exit code: got %d, want 2", code)
			}
			if got := stderr.String(); got != "lampgw: "+msg+"\n" {
				t.Errorf("run stderr: got %q, want %q", got, "lampgw: "+msg+"\n")
			}
			if stdout.Len() != 0 {
				t.Errorf("run stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"short", []string{"-h"}},
		{"long", []string{"--help"}},
		{"single dash long", []string{"-help"}},
		{"after other flags", []string{"--mqtt-addr", ":1", "--help"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			// Bad env values must not stop help from being shown.
			getenv := func(k string) string {
				return map[string]string{"LAMPGW_LOG_LEVEL": "loud", "LAMPGW_MAX_FRAME": "1k"}[k]
			}
			if code := run(t.Context(), tc.args, getenv, &stdout, &stderr); code != 0 {
				t.Errorf("exit code: got %d, want 0", code)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: got %q, want nothing", stderr.String())
			}
			cfg := defaultConfig()
			newFlagSet(&cfg).VisitAll(func(f *flag.Flag) {
				for _, want := range []string{"--" + f.Name + " ", envName(f.Name)} {
					if !strings.Contains(stdout.String(), want) {
						t.Errorf("usage: got no %q, want every flag with its env name:\n%s", want, stdout.String())
					}
				}
			})
		})
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		level    string
		format   string
		terminal bool
		wantJSON bool
		wantLogs int // of one debug and one warn line
	}{
		{"json at info drops debug", "info", "json", true, true, 1},
		{"json at debug", "debug", "json", false, true, 2},
		{"error level drops warn", "error", "json", false, true, 0},
		{"auto off a terminal is json", "info", "auto", false, true, 1},
		{"auto on a terminal is console", "info", "auto", true, false, 1},
		{"console off a terminal", "warn", "console", false, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l := newLogger(&buf, tc.level, tc.format, tc.terminal)
			l.Debug().Msg("quiet")
			l.Warn().Str("setting", "x").Msg("loud")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != tc.wantLogs {
				t.Fatalf("lines: got %d %q, want %d", len(lines), lines, tc.wantLogs)
			}
			for _, line := range lines {
				var m map[string]any
				isJSON := json.Unmarshal([]byte(line), &m) == nil
				if isJSON != tc.wantJSON {
					t.Errorf("line %q is JSON: got %v, want %v", line, isJSON, tc.wantJSON)
				}
				if isJSON && (m["time"] == nil || m["level"] == nil) {
					t.Errorf("line %q: got no time or level, want both", line)
				}
				if !tc.wantJSON && strings.Contains(line, "\x1b[") && !tc.terminal {
					t.Errorf("line %q: got colour codes off a terminal, want none", line)
				}
			}
		})
	}
}

func TestStartupGate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(*startupGate)
		want string
	}{
		{"open writes held lines then later ones", (*startupGate).open, "one\ntwo\nthree\n"},
		{"drop discards held and later lines", (*startupGate).drop, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			g := newStartupGate(&out)
			p := []byte("one\n")
			g.Write(p)
			copy(p, "XXX\n") // the gate must not keep the caller's buffer
			g.Write([]byte("two\n"))
			if out.Len() != 0 {
				t.Fatalf("before open or drop: got %q, want nothing", out.String())
			}
			tc.end(g)
			g.Write([]byte("three\n"))
			if got := out.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
