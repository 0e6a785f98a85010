package devices

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lampgw/lampgw/topics"
)

// The keys every lamp firmware knows.
const (
	KeyBrightness = "brightness"
	KeyAmbient    = "ambient"
	KeyMode       = "mode"
	KeyPower      = "power"
)

// DefaultBrightnessMax is the ESP8266 PWM range, 0..1023.
const DefaultBrightnessMax = 1023

// maxAmbient keeps ambient exactly representable as a JSON number in every
// client (2^53-1).
const maxAmbient = 1<<53 - 1

// Value is one key's value in both spellings.
type Value struct {
	// Text is the MQTT payload and the text-dialect spelling: 512, auto.
	Text string
	// JSON is the JSON literal: 512, "auto".
	JSON string
}

// Pair is a key and its value, in the order a lamp or an app sent it.
type Pair struct {
	Key   string
	Value Value
}

// Schema validates values for one lamp. The zero Schema is the default
// lamp: brightness 0..1023.
type Schema struct {
	// BrightnessMax is the largest brightness the lamp takes; 0 means
	// DefaultBrightnessMax. Some ESP8266 cores use 255.
	BrightnessMax int
}

func (s Schema) brightnessMax() int {
	if s.BrightnessMax > 0 {
		return s.BrightnessMax
	}
	return DefaultBrightnessMax
}

func refuse(key, reason string) error { return &ValueError{Key: key, Reason: reason} }

// CheckKey refuses keys that can't be lamp keys: those topics.CheckKey
// refuses, and "id" and "token", which identify a lamp in a JSON frame. A
// lamp's token must never be published, and an app must not be able to
// write an id into a JSON lamp's frame.
func CheckKey(key string) error {
	switch err := topics.CheckKey(key); err {
	case nil:
		if key == "id" || key == "token" {
			return refuse(key, "reserved name")
		}
		return nil
	case topics.ErrReservedKey:
		return refuse(clip(key), "reserved name")
	default:
		return refuse("", "invalid key "+strconv.Quote(clip(key)))
	}
}

// FromText validates a value written as plain text, as in a text frame
// (brightness=512) or an MQTT payload on lamp/<id>/<key>/set.
func (s Schema) FromText(key, text string) (Value, error) { return fromText(s, key, text) }

// FromTextBytes is FromText for a value still in a read buffer, which it
// does not keep. The known keys' values are parsed where they lie and
// spelled from constants (smallUints, the enum values), so a lamp's usual
// report decodes without allocating; only a pass-through value is copied.
func (s Schema) FromTextBytes(key string, text []byte) (Value, error) { return fromText(s, key, text) }

func fromText[T string | []byte](s Schema, key string, text T) (Value, error) {
	if err := CheckKey(key); err != nil {
		return Value{}, err
	}
	switch key {
	case KeyBrightness:
		n, ok := parseUint(text)
		if !ok {
			return Value{}, refuse(key, "not an integer")
		}
		return s.brightness(n)
	case KeyAmbient:
		n, ok := parseUint(text)
		if !ok {
			return Value{}, refuse(key, "not an integer")
		}
		return ambient(n)
	case KeyMode:
		return enum(key, text, modeAuto, modeManual)
	case KeyPower:
		return enum(key, text, powerOn, powerOff)
	}
	t := string(text)
	if err := checkText(key, t); err != nil {
		return Value{}, err
	}
	return Value{Text: t, JSON: textToJSON(t)}, nil
}

// FromJSON validates a value written as a JSON literal, as in a JSON
// frame or a JSON command. raw must be valid JSON.
func (s Schema) FromJSON(key string, raw []byte) (Value, error) {
	if err := CheckKey(key); err != nil {
		return Value{}, err
	}
	switch key {
	case KeyBrightness, KeyAmbient:
		n, ok := jsonUint(raw)
		if !ok {
			return Value{}, refuse(key, "not a non-negative integer")
		}
		if key == KeyBrightness {
			return s.brightness(n)
		}
		return ambient(n)
	case KeyMode, KeyPower:
		var str string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &str) != nil {
			return Value{}, refuse(key, "not a string")
		}
		if key == KeyMode {
			return enum(key, str, modeAuto, modeManual)
		}
		return enum(key, str, powerOn, powerOff)
	}
	if len(raw) > 0 && raw[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return Value{}, refuse(key, "bad string")
		}
		if str == "" {
			// Published as an empty retained payload it would delete
			// lamp/<id>/<key> [MQTT-3.3.1-10]; FromText refuses it too.
			return Value{}, refuse(key, "empty value")
		}
		return Value{Text: str, JSON: string(raw)}, nil
	}
	if jsonDepth(raw) > MaxJSONDepth {
		return Value{}, refuse(key, fmt.Sprintf("nested deeper than %d levels", MaxJSONDepth))
	}
	return Value{Text: string(raw), JSON: string(raw)}, nil
}

// MaxJSONDepth bounds how deep an object or array value may nest. Real
// lamps send flat values or a small object (a colour); a value nested a
// hundred deep is an attack on the apps that parse lamp/<id>/state.
const MaxJSONDepth = 8

// jsonDepth returns the deepest nesting of arrays and objects in raw,
// which is valid JSON.
func jsonDepth(raw []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, b := range raw {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '{' || b == '[':
			depth++
			deepest = max(deepest, depth)
		case b == '}' || b == ']':
			depth--
		}
	}
	return deepest
}

// CheckCommand refuses command values that a text-dialect lamp could not
// parse back: empty, or containing any Unicode space or control
// character, ',' or ';'. Values made by FromText always pass; values made
// by FromJSON may not.
func CheckCommand(p Pair) error { return checkText(p.Key, p.Value.Text) }

func checkText(key, text string) error {
	if text == "" {
		return refuse(key, "empty value")
	}
	for _, r := range text {
		if unsafeRune(r) || r == ',' || r == ';' {
			return refuse(key, "value must not contain spaces, control characters, ',' or ';'")
		}
	}
	return nil
}

// unsafeRune is what no text value may hold: any Unicode space or control
// character (a lamp's line parser may split or stop there), or the
// replacement character that stands for invalid UTF-8.
func unsafeRune(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
}

func (s Schema) brightness(n uint64) (Value, error) {
	max := s.brightnessMax()
	if n > uint64(max) {
		return Value{}, refuse(KeyBrightness, "out of range 0.."+strconv.Itoa(max))
	}
	t := uintText(n)
	return Value{Text: t, JSON: t}, nil
}

func ambient(n uint64) (Value, error) {
	if n > maxAmbient {
		return Value{}, refuse(KeyAmbient, "too large")
	}
	t := uintText(n)
	return Value{Text: t, JSON: t}, nil
}

// smallUints spells 0..1023, every brightness of the default lamp and
// every reading of an ESP8266's 10-bit ADC (ambient), as substrings of
// one 3.9 KB string: a report of them allocates no text.
var smallUints = func() (t [DefaultBrightnessMax + 1]string) {
	var b []byte
	var ends [len(t)]int
	for i := range t {
		b = strconv.AppendUint(b, uint64(i), 10)
		ends[i] = len(b)
	}
	all, start := string(b), 0
	for i := range t {
		t[i] = all[start:ends[i]]
		start = ends[i]
	}
	return t
}()

// uintText is strconv.FormatUint(n, 10), without allocating for n in
// smallUints.
func uintText(n uint64) string {
	if n < uint64(len(smallUints)) {
		return smallUints[n]
	}
	return strconv.FormatUint(n, 10)
}

// The values of the enum keys, spelled once.
var (
	modeAuto   = Value{Text: "auto", JSON: `"auto"`}
	modeManual = Value{Text: "manual", JSON: `"manual"`}
	powerOn    = Value{Text: "on", JSON: `"on"`}
	powerOff   = Value{Text: "off", JSON: `"off"`}
)

func enum[T string | []byte](key string, text T, a, b Value) (Value, error) {
	// The string conversion does not escape, so it costs no allocation
	// for a short []byte.
	switch {
	case strings.EqualFold(string(text), a.Text):
		return a, nil
	case strings.EqualFold(string(text), b.Text):
		return b, nil
	}
	return Value{}, refuse(key, "must be "+a.Text+" or "+b.Text)
}

// parseUint accepts only decimal digits: no sign, no spaces, no hex, so
// that "0x10" or "+5" from a confused firmware is refused, not guessed.
func parseUint[T string | []byte](s T) (uint64, bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// jsonUint accepts a JSON number with an integral, non-negative value, so
// 512 and 512.0 (what some JSON encoders write) both work.
func jsonUint(raw []byte) (uint64, bool) {
	if n, ok := parseUint(raw); ok {
		return n, true
	}
	if len(raw) == 0 || !(raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > maxAmbient || f != float64(uint64(f)) {
		return 0, false
	}
	return uint64(f), true
}

// textToJSON gives pass-through text values their natural JSON type in
// lamp/<id>/state: numbers and booleans stay numbers and booleans, the
// rest become strings.
func textToJSON(text string) string {
	if text == "true" || text == "false" {
		return text
	}
	if isJSONNumber(text) {
		return text
	}
	// Not json.Marshal: it escapes <, > and & for HTML, which a lamp's
	// "a<b" should not turn into "a\u003cb" in lamp/<id>/state.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(text)
	return strings.TrimSuffix(b.String(), "\n")
}

// isJSONNumber reports whether s is one JSON number (RFC 8259, section
// 6): a valid JSON value that starts like a number and ends in a digit,
// so no surrounding whitespace.
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	return (s[0] == '-' || isDigit(s[0])) && isDigit(s[len(s)-1]) && json.Valid([]byte(s))
}

// clip keeps echoed input short in error lines.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
