package devices_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/devices"
)

func TestLoadFileFixture(t *testing.T) {
	f, err := devices.LoadFile(filepath.Join("testdata", "devices.yaml"))
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	want := []devices.Config{
		{ID: "kitchen", Name: "Kitchen lamp", Dial: "192.168.1.40:8888", Dialect: "json", BrightnessMax: 255, Line: 3},
		{ID: "hall", Match: netip.MustParsePrefix("192.168.1.41/32"), Line: 9},
		{ID: "garage", Match: netip.MustParsePrefix("10.0.0.0/24"), TokenHash: devices.HashToken("s3cret"), Line: 11},
		{ID: "porch", TokenHash: devices.HashToken("0123"), Line: 14},
	}
	if len(f.Devices) != len(want) {
		t.Fatalf("devices: got %d, want %d: %+v", len(f.Devices), len(want), f.Devices)
	}
	for i, w := range want {
		if got := f.Devices[i]; got != w {
			t.Errorf("device %d: got %+v, want %+v", i, got, w)
		}
	}
	if c, ok := f.Lookup("garage"); !ok || !c.CheckToken("s3cret") || c.CheckToken("s3cre") || c.CheckToken("") {
		t.Errorf("Lookup(garage): got %+v %v, want the garage with token s3cret", c, ok)
	}
	if c, _ := f.Lookup("porch"); !c.CheckToken("0123") {
		t.Errorf("porch: token given as sha256:<hex> does not check")
	}
	if c, _ := f.Lookup("hall"); c.HasToken() || c.CheckToken("") {
		t.Errorf("hall: has no token, but HasToken or CheckToken(\"\") is true")
	}
	if _, ok := f.Lookup("nope"); ok {
		t.Errorf("Lookup(nope): got a device, want none")
	}
	if got := f.Devices[0].Schema().BrightnessMax; got != 255 {
		t.Errorf("Schema().BrightnessMax: got %d, want 255", got)
	}
}

func TestFileMatchAddr(t *testing.T) {
	f, err := devices.ParseFile("m.yaml", []byte(`
devices:
  - {id: net, match: 10.0.0.0/8}
  - {id: host, match: 10.1.2.3}
  - {id: sub, match: 10.1.0.0/16}
  - {id: six, match: "fd00::/64"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr, want string
	}{
		{"10.1.2.3", "host"},
		{"::ffff:10.1.2.3", "host"},
		{"10.1.9.9", "sub"},
		{"10.200.0.1", "net"},
		{"fd00::1", "six"},
		{"192.168.1.1", ""},
		{"fd01::1", ""},
	} {
		c, ok := f.MatchAddr(netip.MustParseAddr(tc.addr))
		if c.ID != tc.want || ok != (tc.want != "") {
			t.Errorf("MatchAddr(%s): got %q %v, want %q", tc.addr, c.ID, ok, tc.want)
		}
	}
	var none *devices.File
	if _, ok := none.MatchAddr(netip.MustParseAddr("10.1.2.3")); ok {
		t.Errorf("nil File matched an address")
	}
}

func TestParseFileEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "~\n", "devices:\n", "devices: []\n"} {
		f, err := devices.ParseFile("e.yaml", []byte(src))
		if err != nil || len(f.Devices) != 0 {
			t.Errorf("ParseFile(%q): got %v, %v; want no devices and no error", src, f, err)
		}
	}
}

// fileErrorTests feeds TestParseFileErrors and seeds FuzzParseFile.
var fileErrorTests = []struct {
	name, src string
	// want is the whole one-line message: file, line, key, reason.
	want string
}{
	{"not yaml", "devices: [\n", "d.yaml:1: did not find expected node content"},
	{"two documents", "devices: []\n---\ndevices: []\n", "d.yaml: want one YAML document, found more"},
	{"top is a list", "- id: a\n", `d.yaml:1: want a mapping with the key "devices"`},
	{"unknown top key", "lamps: []\n", `d.yaml:1: lamps: unknown key (the file has one key, "devices")`},
	{"devices twice", "devices: []\ndevices: []\n", "d.yaml:2: devices: set twice"},
	{"devices a map", "devices:\n  id: a\n", "d.yaml:2: devices: want a list of devices"},
	{"device a string", "devices:\n  - kitchen\n", "d.yaml:2: want a device: a mapping with at least an id"},
	{"no id", "devices:\n  - name: x\n", "d.yaml:2: id: missing: every device needs an id"},
	{"bad id", "devices:\n  - id: a/b\n", `d.yaml:2: id: want 1 to 64 of A-Z a-z 0-9 _ -, got "a/b"`},
	{"duplicate id", "devices:\n  - id: a\n  - id: a\n", `d.yaml:3: id: "a" is already the device at line 2`},
	{"unknown key", "devices:\n  - id: a\n    brightness: 3\n", "d.yaml:3: brightness: unknown key (known: id, name, dial, match, dialect, token, brightness_max)"},
	{"key twice", "devices:\n  - id: a\n    name: x\n    name: y\n", "d.yaml:4: name: set twice"},
	{"list value", "devices:\n  - id: a\n    name: [x]\n", "d.yaml:3: name: want a single value, not a list or mapping"},
	{"dial no port", "devices:\n  - id: a\n    dial: lamp\n", `d.yaml:3: dial: want host:port with a host and a port 1..65535, got "lamp"`},
	{"dial port 0", "devices:\n  - id: a\n    dial: lamp:0\n", `d.yaml:3: dial: want host:port with a host and a port 1..65535, got "lamp:0"`},
	{"dial no host", "devices:\n  - id: a\n    dial: :8888\n", `d.yaml:3: dial: want host:port with a host and a port 1..65535, got ":8888"`},
	{"dial port name", "devices:\n  - id: a\n    dial: lamp:http\n", `d.yaml:3: dial: want host:port with a host and a port 1..65535, got "lamp:http"`},
	{"match host name", "devices:\n  - id: a\n    match: lamp.lan\n", `d.yaml:3: match: want an IP address or a CIDR like 192.168.1.0/24, got "lamp.lan"`},
	{"match bad cidr", "devices:\n  - id: a\n    match: 10.0.0.0/33\n", `d.yaml:3: match: want an IP address or a CIDR like 192.168.1.0/24, got "10.0.0.0/33"`},
	{"match twice", "devices:\n  - {id: a, match: 10.0.0.1}\n  - {id: b, match: 10.0.0.1/32}\n", `d.yaml:3: match: 10.0.0.1/32 already identifies "a"`},
	{"dial and match", "devices:\n  - id: a\n    dial: x:1\n    match: 10.0.0.1\n", "d.yaml:2: match: a device is either dialed (dial) or dials in (match), not both"},
	{"dialect", "devices:\n  - id: a\n    dialect: xml\n", `d.yaml:3: dialect: want text or json, got "xml"`},
	{"token space", "devices:\n  - id: a\n    token: two words\n", "d.yaml:3: token: want 1 to 128 bytes without spaces or control characters, or sha256:<hex>"},
	{"token empty", "devices:\n  - id: a\n    token: \"\"\n", "d.yaml:3: token: want 1 to 128 bytes without spaces or control characters, or sha256:<hex>"},
	{"token short hash", "devices:\n  - id: a\n    token: sha256:abcd\n", "d.yaml:3: token: want sha256: and 64 hex digits"},
	{"brightness_max word", "devices:\n  - id: a\n    brightness_max: lots\n", `d.yaml:3: brightness_max: want an integer 1..65535, got "lots"`},
	{"brightness_max zero", "devices:\n  - id: a\n    brightness_max: 0\n", `d.yaml:3: brightness_max: want an integer 1..65535, got "0"`},
	{"name control", "devices:\n  - id: a\n    name: \"a\\tb\"\n", "d.yaml:3: name: want at most 128 bytes without control characters"},
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range fileErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := devices.ParseFile("d.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("got %+v, want error %q", f.Devices, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line: %q", err)
			}
			var fe *devices.FileError
			if !errors.As(err, &fe) || !errors.Is(err, devices.ErrBadFile) {
				t.Errorf("got %T, want a *FileError matching ErrBadFile", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := devices.LoadFile(filepath.Join(dir, "missing.yaml"))
	if want := filepath.Join(dir, "missing.yaml") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: got %v, want %s", err, want)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, devices.MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := devices.LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: got %v, want larger than", err)
	}
	secret := filepath.Join(dir, "secret.yaml")
	os.WriteFile(secret, []byte("devices:\n  - id: a\n    token: \"hunter 2\"\n"), 0o644)
	if _, err := devices.LoadFile(secret); err == nil || strings.Contains(err.Error(), "hunter") {
		t.Errorf("bad token: got %v, want an error that does not repeat the token", err)
	}
}

func TestConfigSameConnection(t *testing.T) {
	a := devices.Config{ID: "a", Name: "A", Dial: "x:1", Line: 2}
	for _, tc := range []struct {
		name string
		b    devices.Config
		want bool
	}{
		{"same", a, true},
		{"renamed and moved", devices.Config{ID: "a", Name: "B", Dial: "x:1", Line: 9}, true},
		{"dial", devices.Config{ID: "a", Name: "A", Dial: "x:2"}, false},
		{"dialect", devices.Config{ID: "a", Dial: "x:1", Dialect: "json"}, false},
		{"token", devices.Config{ID: "a", Dial: "x:1", TokenHash: devices.HashToken("t")}, false},
		{"brightness", devices.Config{ID: "a", Dial: "x:1", BrightnessMax: 255}, false},
	} {
		if got := a.SameConnection(tc.b); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzParseFile checks, for any bytes: ParseFile never panics; it refuses
// with a one-line *FileError, or returns devices with valid, unique ids
// that Lookup finds, and whose match prefixes MatchAddr honours.
func FuzzParseFile(f *testing.F) {
	for _, tc := range fileErrorTests {
		f.Add([]byte(tc.src))
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "devices.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := devices.ParseFile("f.yaml", data)
		if err != nil {
			var fe *devices.FileError
			if !errors.As(err, &fe) || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("got %T %q, want a one-line *FileError", err, err)
			}
			return
		}
		for _, c := range file.Devices {
			got, ok := file.Lookup(c.ID)
			if !ok || got != c {
				t.Errorf("Lookup(%q): got %+v %v, want %+v", c.ID, got, ok, c)
			}
			if c.Match.IsValid() {
				if m, ok := file.MatchAddr(c.Match.Addr()); !ok || m.Match.Bits() < c.Match.Bits() {
					t.Errorf("MatchAddr(%s): got %+v %v, want a match at least as specific as %s", c.Match.Addr(), m, ok, c.Match)
				}
			}
		}
	})
}
