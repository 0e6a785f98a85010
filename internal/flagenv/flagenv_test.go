package flagenv_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/internal/flagenv"
)

func newSet() (*flag.FlagSet, *string, *int) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addr := fs.String("mqtt-addr", ":1883", "MQTT `host:port`")
	n := fs.Int("max-frame", 1024, "longest frame")
	return fs, addr, n
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		addr    string
		n       int
		wantErr string
	}{
		{name: "unset", addr: ":1883", n: 1024},
		{name: "set", env: map[string]string{"X_MQTT_ADDR": ":1", "X_MAX_FRAME": "16"}, addr: ":1", n: 16},
		{name: "empty is unset", env: map[string]string{"X_MQTT_ADDR": ""}, addr: ":1883", n: 1024},
		{name: "flag beats env", env: map[string]string{"X_MQTT_ADDR": ":1"}, args: []string{"--mqtt-addr", ":2"}, addr: ":2", n: 1024},
		{name: "other prefix ignored", env: map[string]string{"Y_MQTT_ADDR": ":1"}, addr: ":1883", n: 1024},
		{name: "bad value", env: map[string]string{"X_MAX_FRAME": "1k"}, wantErr: `max-frame: invalid value "1k" in X_MAX_FRAME: parse error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, addr, n := newSet()
			err := flagenv.Apply(fs, "X_", func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Apply: got %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if *addr != tc.addr || *n != tc.n {
				t.Errorf("got %q %d, want %q %d", *addr, *n, tc.addr, tc.n)
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	fs, _, _ := newSet()
	var b strings.Builder
	flagenv.PrintTable(&b, fs, "X_")
	for _, want := range []string{"Flag", "--mqtt-addr host:port", "X_MQTT_ADDR", ":1883", "--max-frame int", "X_MAX_FRAME"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
