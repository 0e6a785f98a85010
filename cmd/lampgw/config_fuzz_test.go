package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfigFile checks, for any config file: parseConfig never panics,
// and either refuses with one line that names the config file, or returns
// settings that pass validate.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"# only a comment\n",
		"mqtt-addr: \":1884\"\nmax-frame: 2048\ntopic-prefix: home/lamps\nlog-level: warn\n",
		"ws-addr: \"\"\nhttp-addr:\nbridge-addr: off\n",
		"devices: devices.yaml\nallow-anonymous: true\nlamp-idle-timeout: 1h\nlamp-frame-rate: 0\n",
		"max-frame: 1k\n",
		"mqtt-addr: [1, 2]\n",
		"mqtt-port: 1883\n",
		"mqtt-addr: a\nmqtt-addr: b\n",
		"a: &x 1\nb: *x\n",
		"---\n---\n",
		"- list\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "lampgw.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseConfig([]string{"--config", path}, func(string) string { return "" })
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error is more than one line: %q", msg)
			}
			return
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("parseConfig accepted settings that validate refuses: %v", err)
		}
	})
}
