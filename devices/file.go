package devices

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/lampgw/lampgw/topics"
)

// Dialects a Config may name. They are the bridge's dialect names; the
// bridge maps them, so that this package need not import it.
const (
	DialectText = "text"
	DialectJSON = "json"
)

// Limits of a devices file. A fleet this package's registry can hold fits
// well within them; anything bigger is a mistake, not a fleet.
const (
	MaxFileSize     = 4 << 20
	MaxFileDevices  = 10000
	maxNameLen      = 128
	maxTokenLen     = 128
	maxBrightnessTo = 65535
)

// Config is one device of a devices file. Only ID is required.
type Config struct {
	// ID is the lamp's id, as in HELLO and in its topics.
	ID string
	// Name is a friendly name for apps and logs; "" means none.
	Name string
	// Dial is the host:port the gateway connects out to and keeps
	// connected, for lamps that wait for a connection (an ESP8266
	// WiFiServer); "" means the lamp dials in.
	Dial string
	// Match identifies a lamp that dials in and never says HELLO by its
	// remote address: one address (a /32 or /128 prefix) or a CIDR. The
	// zero Prefix matches nothing.
	Match netip.Prefix
	// Dialect is how to write to a lamp before it has spoken:
	// DialectText, DialectJSON, or "" (text).
	Dialect string
	// TokenHash is the SHA-256 of the lamp's shared secret, which the
	// file holds as the secret or as "sha256:<hex>"; the secret itself is
	// not kept. The zero value means the lamp has no token.
	TokenHash [sha256.Size]byte
	// BrightnessMax is the largest brightness the lamp takes; 0 means
	// DefaultBrightnessMax.
	BrightnessMax int
	// Line is where the device starts in its file, for messages.
	Line int
}

// HasToken reports whether the lamp must present a token.
func (c Config) HasToken() bool { return c.TokenHash != [sha256.Size]byte{} }

// CheckToken reports whether token is the lamp's, in time that does not
// depend on where they differ.
func (c Config) CheckToken(token string) bool {
	h := HashToken(token)
	return c.HasToken() && subtle.ConstantTimeCompare(h[:], c.TokenHash[:]) == 1
}

// HashToken is how a lamp token is stored: its SHA-256. Tokens are
// compared on every HELLO, so a slow hash such as bcrypt would let a
// HELLO flood burn the CPU; a token should be long and random instead
// (openssl rand -hex 16).
func HashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// Schema is the value schema for c's reports and commands.
func (c Config) Schema() Schema { return Schema{BrightnessMax: c.BrightnessMax} }

// SameConnection reports whether a connection made under c may carry on
// under d: every setting but Name and Line is equal.
func (c Config) SameConnection(d Config) bool {
	c.Name, c.Line, d.Name, d.Line = "", 0, "", 0
	return c == d
}

// File is a parsed devices file. A nil *File has no devices.
type File struct {
	// Path is the file it was read from, for messages.
	Path    string
	Devices []Config

	byID map[string]int
	// matches is ordered most specific prefix first.
	matches []int
}

// Lookup returns the device with id.
func (f *File) Lookup(id string) (Config, bool) {
	if f == nil {
		return Config{}, false
	}
	i, ok := f.byID[id]
	if !ok {
		return Config{}, false
	}
	return f.Devices[i], true
}

// MatchAddr returns the device whose Match holds addr, the most specific
// prefix winning. IPv4-mapped IPv6 addresses match IPv4 prefixes.
func (f *File) MatchAddr(addr netip.Addr) (Config, bool) {
	if f == nil || !addr.IsValid() {
		return Config{}, false
	}
	addr = addr.Unmap()
	for _, i := range f.matches {
		if f.Devices[i].Match.Contains(addr) {
			return f.Devices[i], true
		}
	}
	return Config{}, false
}

// FileError is a problem in a devices file. Its text names the file, the
// line and the key: `devices.yaml:7: dial: want host:port, got "lamp"`.
type FileError struct {
	File string
	Line int    // 0 when the problem is not at one line
	Key  string // "" when the problem is not about one key
	Err  error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadFile) true for every FileError.
func (e *FileError) Is(target error) bool { return target == ErrBadFile }

// LoadFile reads and parses a devices file. Every error is a *FileError,
// including one opening the file.
func LoadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &FileError{File: path, Err: unwrapPath(err)}
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{File: path, Err: unwrapPath(err)}
	}
	return ParseFile(path, data)
}

// unwrapPath drops the *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseFile parses the YAML of a devices file; name is used in messages.
//
//	devices:
//	  - id: kitchen
//	    name: Kitchen lamp
//	    dial: 192.168.1.40:8888
//	    dialect: text
//	    brightness_max: 255
//
// An empty file, or one without devices, has no devices.
func ParseFile(name string, data []byte) (*File, error) {
	fail := func(line int, key string, format string, args ...any) error {
		return &FileError{File: name, Line: line, Key: key, Err: fmt.Errorf(format, args...)}
	}
	if len(data) > MaxFileSize {
		return nil, fail(0, "", "larger than %d bytes", MaxFileSize)
	}
	f := &File{Path: name, byID: make(map[string]int)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return f, nil
	} else if err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail(0, "", "want one YAML document, found more")
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "", "want a mapping with the key \"devices\"")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolve(root.Content[i+1])
		if k.Value != "devices" {
			return nil, fail(k.Line, k.Value, "unknown key (the file has one key, \"devices\")")
		}
		if list != nil {
			return nil, fail(k.Line, k.Value, "set twice")
		}
		list = v
	}
	if list == nil || isNull(list) {
		return f, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fail(list.Line, "devices", "want a list of devices")
	}
	if len(list.Content) > MaxFileDevices {
		return nil, fail(list.Line, "devices", "more than %d devices", MaxFileDevices)
	}
	var prefixes = make(map[netip.Prefix]string)
	for _, n := range list.Content {
		n = resolve(n)
		if n.Kind != yaml.MappingNode {
			return nil, fail(n.Line, "", "want a device: a mapping with at least an id")
		}
		c, err := parseDevice(n, fail)
		if err != nil {
			return nil, err
		}
		if prev, ok := f.byID[c.ID]; ok {
			return nil, fail(c.Line, "id", "%q is already the device at line %d", c.ID, f.Devices[prev].Line)
		}
		if c.Match.IsValid() {
			if other, ok := prefixes[c.Match]; ok {
				return nil, fail(c.Line, "match", "%s already identifies %q", c.Match, other)
			}
			prefixes[c.Match] = c.ID
			f.matches = append(f.matches, len(f.Devices))
		}
		f.byID[c.ID] = len(f.Devices)
		f.Devices = append(f.Devices, c)
	}
	// Most specific first, so that a lamp with its own /32 inside a
	// matched network is told apart. Bits ties cannot overlap unless
	// equal, which is refused above.
	ms := f.matches
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && f.Devices[ms[j]].Match.Bits() > f.Devices[ms[j-1]].Match.Bits(); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	return f, nil
}

type failFunc func(line int, key string, format string, args ...any) error

func parseDevice(n *yaml.Node, fail failFunc) (Config, error) {
	c := Config{Line: n.Line}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		key := k.Value
		if seen[key] {
			return c, fail(k.Line, key, "set twice")
		}
		seen[key] = true
		if v.Kind != yaml.ScalarNode {
			return c, fail(v.Line, key, "want a single value, not a list or mapping")
		}
		val := v.Value
		if isNull(v) {
			val = ""
		}
		bad := func(format string, args ...any) error { return fail(v.Line, key, format, args...) }
		switch key {
		case "id":
			if !topics.ValidID(val) {
				return c, bad("want 1 to 64 of A-Z a-z 0-9 _ -, got %q", val)
			}
			c.ID = val
		case "name":
			if len(val) > maxNameLen || strings.ContainsFunc(val, unicode.IsControl) {
				return c, bad("want at most %d bytes without control characters", maxNameLen)
			}
			c.Name = val
		case "dial":
			host, port, err := net.SplitHostPort(val)
			if err == nil {
				var p uint64
				p, err = strconv.ParseUint(port, 10, 16)
				if err == nil && (p == 0 || host == "") {
					err = errors.New("zero port or empty host")
				}
			}
			if err != nil {
				return c, bad("want host:port with a host and a port 1..65535, got %q", val)
			}
			c.Dial = val
		case "match":
			p, err := parseMatch(val)
			if err != nil {
				return c, bad("want an IP address or a CIDR like 192.168.1.0/24, got %q", val)
			}
			c.Match = p
		case "dialect":
			if val != DialectText && val != DialectJSON {
				return c, bad("want %s or %s, got %q", DialectText, DialectJSON, val)
			}
			c.Dialect = val
		case "token":
			h, err := parseToken(val)
			if err != nil {
				return c, bad("%v", err)
			}
			c.TokenHash = h
		case "brightness_max":
			m, err := strconv.Atoi(val)
			if err != nil || m < 1 || m > maxBrightnessTo {
				return c, bad("want an integer 1..%d, got %q", maxBrightnessTo, val)
			}
			c.BrightnessMax = m
		default:
			return c, fail(k.Line, key, "unknown key (known: id, name, dial, match, dialect, token, brightness_max)")
		}
	}
	if c.ID == "" {
		return c, fail(n.Line, "id", "missing: every device needs an id")
	}
	if c.Dial != "" && c.Match.IsValid() {
		return c, fail(n.Line, "match", "a device is either dialed (dial) or dials in (match), not both")
	}
	return c, nil
}

// parseToken reads a token entry: "sha256:" and 64 hex digits is a
// hash, anything else the token itself, which goes on a HELLO line after
// the id and so must be one word.
func parseToken(val string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	if hexed, ok := strings.CutPrefix(val, "sha256:"); ok {
		b, err := hex.DecodeString(hexed)
		if err != nil || len(b) != sha256.Size {
			return h, errors.New("want sha256: and 64 hex digits")
		}
		copy(h[:], b)
		if h == ([sha256.Size]byte{}) {
			return h, errors.New("want sha256: and 64 hex digits, not all zero")
		}
		return h, nil
	}
	if val == "" || len(val) > maxTokenLen || strings.ContainsFunc(val, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return h, fmt.Errorf("want 1 to %d bytes without spaces or control characters, or sha256:<hex>", maxTokenLen)
	}
	return HashToken(val), nil
}

func parseMatch(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return p, errors.New("mapped prefix shorter than /96")
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("not an address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// yamlError turns yaml.v3's "yaml: line 3: did not find ..." into a
// FileError at that line.
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	return &FileError{File: name, Line: line, Err: errors.New(msg)}
}

func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }
