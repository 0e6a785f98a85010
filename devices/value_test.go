package devices_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/devices"
)

var (
	key32 = "k" + strings.Repeat("0", 31)
	key33 = "k" + strings.Repeat("0", 32)
)

// valueTest is one row of the FromText and FromJSON tables. A row with
// wantErr set must be refused with an error that errors.Is
// devices.ErrInvalidValue, is a *devices.ValueError and names wantKey.
type valueTest struct {
	name    string
	schema  devices.Schema
	key     string
	in      string
	want    devices.Value
	wantErr bool
	// wantKey is the ValueError's Key; for invalid keys it is "" because
	// the key itself is what's wrong and is quoted in the reason.
	wantKey string
	// wantReason, if set, must appear in the error text.
	wantReason string
}

func v(text, js string) devices.Value { return devices.Value{Text: text, JSON: js} }

var fromTextTests = []valueTest{
	// brightness: an integer 0..BrightnessMax, decimal digits only.
	{name: "brightness zero", key: "brightness", in: "0", want: v("0", "0")},
	{name: "brightness mid", key: "brightness", in: "512", want: v("512", "512")},
	{name: "brightness max", key: "brightness", in: "1023", want: v("1023", "1023")},
	{name: "brightness leading zeros normalised", key: "brightness", in: "00512", want: v("512", "512")},
	{name: "brightness over max", key: "brightness", in: "1024", wantErr: true, wantKey: "brightness", wantReason: "out of range 0..1023"},
	{name: "brightness huge", key: "brightness", in: "9999999999999999999", wantErr: true, wantKey: "brightness", wantReason: "out of range"},
	{name: "brightness 20 digits", key: "brightness", in: "99999999999999999999", wantErr: true, wantKey: "brightness", wantReason: "not an integer"},
	{name: "brightness negative", key: "brightness", in: "-1", wantErr: true, wantKey: "brightness"},
	{name: "brightness plus sign", key: "brightness", in: "+5", wantErr: true, wantKey: "brightness"},
	{name: "brightness hex", key: "brightness", in: "0x10", wantErr: true, wantKey: "brightness"},
	{name: "brightness fraction", key: "brightness", in: "1.5", wantErr: true, wantKey: "brightness"},
	{name: "brightness word", key: "brightness", in: "high", wantErr: true, wantKey: "brightness", wantReason: "not an integer"},
	{name: "brightness empty", key: "brightness", in: "", wantErr: true, wantKey: "brightness"},
	{name: "brightness inner space", key: "brightness", in: "5 1", wantErr: true, wantKey: "brightness"},
	{name: "brightness 255 schema max", schema: devices.Schema{BrightnessMax: 255}, key: "brightness", in: "255", want: v("255", "255")},
	{name: "brightness 255 schema over", schema: devices.Schema{BrightnessMax: 255}, key: "brightness", in: "256", wantErr: true, wantKey: "brightness", wantReason: "out of range 0..255"},
	{name: "brightness negative schema max is default", schema: devices.Schema{BrightnessMax: -1}, key: "brightness", in: "1023", want: v("1023", "1023")},

	// ambient: an integer >= 0, at most 2^53-1 so every JSON client reads it exactly.
	{name: "ambient zero", key: "ambient", in: "0", want: v("0", "0")},
	{name: "ambient large", key: "ambient", in: "830000", want: v("830000", "830000")},
	{name: "ambient 2^53-1", key: "ambient", in: "9007199254740991", want: v("9007199254740991", "9007199254740991")},
	{name: "ambient 2^53", key: "ambient", in: "9007199254740992", wantErr: true, wantKey: "ambient", wantReason: "too large"},
	{name: "ambient negative", key: "ambient", in: "-3", wantErr: true, wantKey: "ambient", wantReason: "not an integer"},
	{name: "ambient word", key: "ambient", in: "dark", wantErr: true, wantKey: "ambient"},

	// mode and power: case-insensitive enums, normalised to lower case.
	{name: "mode auto", key: "mode", in: "auto", want: v("auto", `"auto"`)},
	{name: "mode manual", key: "mode", in: "manual", want: v("manual", `"manual"`)},
	{name: "mode upper", key: "mode", in: "AUTO", want: v("auto", `"auto"`)},
	{name: "mode mixed", key: "mode", in: "MaNuAl", want: v("manual", `"manual"`)},
	{name: "mode other", key: "mode", in: "party", wantErr: true, wantKey: "mode", wantReason: "must be auto or manual"},
	{name: "mode empty", key: "mode", in: "", wantErr: true, wantKey: "mode"},
	{name: "mode prefix", key: "mode", in: "autox", wantErr: true, wantKey: "mode"},
	{name: "power on", key: "power", in: "on", want: v("on", `"on"`)},
	{name: "power off upper", key: "power", in: "OFF", want: v("off", `"off"`)},
	{name: "power On", key: "power", in: "On", want: v("on", `"on"`)},
	{name: "power number", key: "power", in: "1", wantErr: true, wantKey: "power", wantReason: "must be on or off"},

	// Pass-through keys keep their text and get their natural JSON type.
	{name: "pass integer", key: "color_temp", in: "4000", want: v("4000", "4000")},
	{name: "pass negative float", key: "temp", in: "-1.5", want: v("-1.5", "-1.5")},
	{name: "pass exponent", key: "x", in: "1e-3", want: v("1e-3", "1e-3")},
	{name: "pass upper exponent", key: "x", in: "2E+10", want: v("2E+10", "2E+10")},
	{name: "pass minus zero", key: "x", in: "-0", want: v("-0", "-0")},
	{name: "pass true", key: "night", in: "true", want: v("true", "true")},
	{name: "pass false", key: "night", in: "false", want: v("false", "false")},
	{name: "pass True is a string", key: "night", in: "True", want: v("True", `"True"`)},
	{name: "pass null is a string", key: "x", in: "null", want: v("null", `"null"`)},
	{name: "pass word", key: "scene", in: "reading", want: v("reading", `"reading"`)},
	{name: "pass leading zero is a string", key: "x", in: "01", want: v("01", `"01"`)},
	{name: "pass trailing dot is a string", key: "x", in: "1.", want: v("1.", `"1."`)},
	{name: "pass leading dot is a string", key: "x", in: ".5", want: v(".5", `".5"`)},
	{name: "pass bare exponent is a string", key: "x", in: "1e", want: v("1e", `"1e"`)},
	{name: "pass plus is a string", key: "x", in: "+1", want: v("+1", `"+1"`)},
	{name: "pass NaN is a string", key: "x", in: "NaN", want: v("NaN", `"NaN"`)},
	{name: "pass quote escaped", key: "x", in: `a"b\c`, want: v(`a"b\c`, `"a\"b\\c"`)},
	{name: "pass unicode", key: "x", in: "küche", want: v("küche", `"küche"`)},
	{name: "pass max key", key: key32, in: "1", want: v("1", "1")},
	{name: "pass inner space refused", key: "x", in: "a b", wantErr: true, wantKey: "x"},
	{name: "pass NBSP refused", key: "x", in: "a\u00a0", wantErr: true, wantKey: "x"},
	{name: "pass C1 control refused", key: "x", in: "a\u0085", wantErr: true, wantKey: "x"},
	{name: "pass comma refused", key: "x", in: "a,b", wantErr: true, wantKey: "x"},
	{name: "pass HTML characters not escaped", key: "x", in: "a<b&c>", want: v("a<b&c>", `"a<b&c>"`)},
	{name: "pass quote escaped", key: "x", in: `say"hi"`, want: v(`say"hi"`, `"say\"hi\""`)},
	{name: "pass empty", key: "x", in: "", wantErr: true, wantKey: "x", wantReason: "empty value"},
	{name: "pass NUL", key: "x", in: "a\x00", wantErr: true, wantKey: "x", wantReason: "control character"},
	{name: "pass newline", key: "x", in: "a\nb", wantErr: true, wantKey: "x", wantReason: "control character"},
	{name: "pass carriage return", key: "x", in: "a\r", wantErr: true, wantKey: "x", wantReason: "control character"},
	{name: "pass tab", key: "x", in: "a\tb", wantErr: true, wantKey: "x", wantReason: "control character"},
	{name: "pass DEL", key: "x", in: "a\x7f", wantErr: true, wantKey: "x", wantReason: "control character"},

	// Keys.
	{name: "reserved state", key: "state", in: "1", wantErr: true, wantKey: "state", wantReason: "reserved name"},
	{name: "reserved availability", key: "availability", in: "1", wantErr: true, wantKey: "availability", wantReason: "reserved name"},
	{name: "reserved error", key: "error", in: "1", wantErr: true, wantKey: "error", wantReason: "reserved name"},
	{name: "reserved ack", key: "ack", in: "1", wantErr: true, wantKey: "ack", wantReason: "reserved name"},
	{name: "reserved set", key: "set", in: "1", wantErr: true, wantKey: "set", wantReason: "reserved name"},
	{name: "key upper case", key: "Brightness", in: "1", wantErr: true, wantReason: `invalid key "Brightness"`},
	{name: "key empty", key: "", in: "1", wantErr: true, wantReason: `invalid key ""`},
	{name: "key leading digit", key: "1x", in: "1", wantErr: true, wantReason: "invalid key"},
	{name: "key slash", key: "a/b", in: "1", wantErr: true, wantReason: "invalid key"},
	{name: "key wildcard", key: "#", in: "1", wantErr: true, wantReason: "invalid key"},
	{name: "key too long", key: key33, in: "1", wantErr: true, wantReason: "invalid key"},
	{name: "key newline quoted", key: "a\nb", in: "1", wantErr: true, wantReason: `invalid key "a\nb"`},
	{name: "key very long clipped", key: strings.Repeat("Z", 100), in: "1", wantErr: true, wantReason: `invalid key "` + strings.Repeat("Z", 32) + `..."`},
}

var fromJSONTests = []valueTest{
	{name: "object 8 deep", key: "deep", in: strings.Repeat(`{"a":`, 8) + "1" + strings.Repeat("}", 8),
		want: v(strings.Repeat(`{"a":`, 8)+"1"+strings.Repeat("}", 8), strings.Repeat(`{"a":`, 8)+"1"+strings.Repeat("}", 8))},
	{name: "array 9 deep", key: "deep", in: "[[[[[[[[[1]]]]]]]]]", wantErr: true, wantKey: "deep", wantReason: "nested deeper than 8 levels"},
	{name: "brackets in strings do not nest", key: "s", in: `{"a":"[[[[[[[[[[\"{{{{{{{{{"}`, want: v(`{"a":"[[[[[[[[[[\"{{{{{{{{{"}`, `{"a":"[[[[[[[[[[\"{{{{{{{{{"}`)},
	{name: "brightness", key: "brightness", in: "512", want: v("512", "512")},
	{name: "brightness zero", key: "brightness", in: "0", want: v("0", "0")},
	{name: "brightness max", key: "brightness", in: "1023", want: v("1023", "1023")},
	{name: "brightness integral float", key: "brightness", in: "512.0", want: v("512", "512")},
	{name: "brightness exponent", key: "brightness", in: "1e3", want: v("1000", "1000")},
	{name: "brightness over max", key: "brightness", in: "1024", wantErr: true, wantKey: "brightness", wantReason: "out of range 0..1023"},
	{name: "brightness fraction", key: "brightness", in: "1.5", wantErr: true, wantKey: "brightness"},
	{name: "brightness negative", key: "brightness", in: "-1", wantErr: true, wantKey: "brightness"},
	{name: "brightness negative zero", key: "brightness", in: "-0", wantErr: true, wantKey: "brightness"},
	{name: "brightness string", key: "brightness", in: `"512"`, wantErr: true, wantKey: "brightness", wantReason: "not a non-negative integer"},
	{name: "brightness bool", key: "brightness", in: "true", wantErr: true, wantKey: "brightness"},
	{name: "brightness null", key: "brightness", in: "null", wantErr: true, wantKey: "brightness"},
	{name: "brightness object", key: "brightness", in: `{"v":1}`, wantErr: true, wantKey: "brightness"},
	{name: "brightness overflow", key: "brightness", in: "1e400", wantErr: true, wantKey: "brightness"},
	{name: "brightness 255 schema", schema: devices.Schema{BrightnessMax: 255}, key: "brightness", in: "255", want: v("255", "255")},
	{name: "brightness 255 schema over", schema: devices.Schema{BrightnessMax: 255}, key: "brightness", in: "256", wantErr: true, wantKey: "brightness", wantReason: "out of range 0..255"},
	{name: "ambient", key: "ambient", in: "830", want: v("830", "830")},
	{name: "ambient 2^53-1", key: "ambient", in: "9007199254740991", want: v("9007199254740991", "9007199254740991")},
	{name: "ambient 2^53", key: "ambient", in: "9007199254740992", wantErr: true, wantKey: "ambient", wantReason: "too large"},
	{name: "ambient float too large", key: "ambient", in: "1e17", wantErr: true, wantKey: "ambient"},
	{name: "ambient string", key: "ambient", in: `"830"`, wantErr: true, wantKey: "ambient"},
	{name: "mode", key: "mode", in: `"auto"`, want: v("auto", `"auto"`)},
	{name: "mode upper", key: "mode", in: `"MANUAL"`, want: v("manual", `"manual"`)},
	{name: "mode escaped", key: "mode", in: `"\u0061uto"`, want: v("auto", `"auto"`)},
	{name: "mode other", key: "mode", in: `"party"`, wantErr: true, wantKey: "mode", wantReason: "must be auto or manual"},
	{name: "mode number", key: "mode", in: "1", wantErr: true, wantKey: "mode", wantReason: "not a string"},
	{name: "mode null", key: "mode", in: "null", wantErr: true, wantKey: "mode", wantReason: "not a string"},
	{name: "power", key: "power", in: `"ON"`, want: v("on", `"on"`)},
	{name: "power bool", key: "power", in: "true", wantErr: true, wantKey: "power", wantReason: "not a string"},
	{name: "power other", key: "power", in: `"dim"`, wantErr: true, wantKey: "power", wantReason: "must be on or off"},

	// Pass-through: the JSON literal is kept; Text is what MQTT apps see.
	{name: "pass number", key: "color_temp", in: "4000", want: v("4000", "4000")},
	{name: "pass float", key: "x", in: "-1.25e2", want: v("-1.25e2", "-1.25e2")},
	{name: "pass string", key: "scene", in: `"reading"`, want: v("reading", `"reading"`)},
	{name: "pass escaped string", key: "x", in: `"a\"b"`, want: v(`a"b`, `"a\"b"`)},
	{name: "pass string with space", key: "x", in: `"a b"`, want: v("a b", `"a b"`)},
	{name: "pass true", key: "x", in: "true", want: v("true", "true")},
	{name: "pass null", key: "x", in: "null", want: v("null", "null")},
	{name: "pass object", key: "rgb", in: `{"r":1,"g":2}`, want: v(`{"r":1,"g":2}`, `{"r":1,"g":2}`)},
	{name: "pass array", key: "xy", in: `[1,2]`, want: v(`[1,2]`, `[1,2]`)},
	// An empty payload on a retained topic deletes it in MQTT
	// [MQTT-3.3.1-10]; FromText refuses empty values too.
	{name: "pass empty string", key: "x", in: `""`, wantErr: true, wantKey: "x", wantReason: "empty value"},
	{name: "reserved", key: "set", in: "1", wantErr: true, wantKey: "set", wantReason: "reserved name"},
	{name: "bad key", key: "Mode", in: `"auto"`, wantErr: true, wantReason: `invalid key "Mode"`},
	{name: "empty key", key: "", in: "1", wantErr: true, wantReason: "invalid key"},
}

func runValueTests(t *testing.T, tests []valueTest, decode func(s devices.Schema, key, in string) (devices.Value, error)) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.schema, tc.key, tc.in)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("(%q, %q): got error %v, want %+v", tc.key, tc.in, err, tc.want)
				}
				if got != tc.want {
					t.Errorf("(%q, %q): got %+v, want %+v", tc.key, tc.in, got, tc.want)
				}
				if !json.Valid([]byte(got.JSON)) {
					t.Errorf("(%q, %q): JSON %q is not valid JSON", tc.key, tc.in, got.JSON)
				}
				return
			}
			if err == nil {
				t.Fatalf("(%q, %q): got %+v, want an error", tc.key, tc.in, got)
			}
			if !errors.Is(err, devices.ErrInvalidValue) {
				t.Errorf("errors.Is(%v, ErrInvalidValue): got false, want true", err)
			}
			var ve *devices.ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("got %T, want *devices.ValueError", err)
			}
			if ve.Key != tc.wantKey {
				t.Errorf("ValueError.Key: got %q, want %q", ve.Key, tc.wantKey)
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("error text: got %q, want it to contain %q", err.Error(), tc.wantReason)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error text %q: got a line break, want one line", err.Error())
			}
			if got != (devices.Value{}) {
				t.Errorf("value on error: got %+v, want zero", got)
			}
		})
	}
}

func TestSchemaFromText(t *testing.T) {
	runValueTests(t, fromTextTests, func(s devices.Schema, key, in string) (devices.Value, error) {
		return s.FromText(key, in)
	})
}

func TestSchemaFromJSON(t *testing.T) {
	runValueTests(t, fromJSONTests, func(s devices.Schema, key, in string) (devices.Value, error) {
		return s.FromJSON(key, []byte(in))
	})
}

// TestTextAndJSONAgree checks that a value accepted in both spellings
// gives the same Value, so a lamp's state doesn't depend on its dialect.
func TestTextAndJSONAgree(t *testing.T) {
	tests := []struct {
		name, key, text, json string
	}{
		{name: "brightness", key: "brightness", text: "700", json: "700"},
		{name: "ambient", key: "ambient", text: "0", json: "0"},
		{name: "mode", key: "mode", text: "Manual", json: `"MANUAL"`},
		{name: "power", key: "power", text: "off", json: `"off"`},
		{name: "pass number", key: "x", text: "1.5", json: "1.5"},
		{name: "pass bool", key: "x", text: "true", json: "true"},
		{name: "pass string", key: "x", text: "abc", json: `"abc"`},
	}
	var s devices.Schema
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fromText, err := s.FromText(tc.key, tc.text)
			if err != nil {
				t.Fatalf("FromText(%q, %q): %v", tc.key, tc.text, err)
			}
			fromJSON, err := s.FromJSON(tc.key, []byte(tc.json))
			if err != nil {
				t.Fatalf("FromJSON(%q, %s): %v", tc.key, tc.json, err)
			}
			if fromText != fromJSON {
				t.Errorf("got %+v from text, want %+v as from JSON", fromText, fromJSON)
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		wantErr bool
	}{
		{name: "known", key: "brightness"},
		{name: "pass-through", key: "color_temp_2"},
		{name: "max length", key: key32},
		{name: "too long", key: key33, wantErr: true},
		{name: "reserved", key: "state", wantErr: true},
		{name: "upper", key: "X", wantErr: true},
		{name: "empty", key: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := devices.CheckKey(tc.key)
			if got := err != nil; got != tc.wantErr {
				t.Fatalf("CheckKey(%q): got %v, want error %v", tc.key, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, devices.ErrInvalidValue) {
				t.Errorf("errors.Is(%v, ErrInvalidValue): got false, want true", err)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr bool
	}{
		{name: "number", text: "700"},
		{name: "word", text: "manual"},
		{name: "JSON object without spaces", text: `{"r":1}`},
		{name: "punctuation", text: "a=b:c/d"},
		{name: "unicode", text: "küche"},
		{name: "empty", text: "", wantErr: true},
		{name: "space", text: "a b", wantErr: true},
		{name: "tab", text: "a\tb", wantErr: true},
		{name: "newline", text: "a\nb", wantErr: true},
		{name: "carriage return", text: "a\r", wantErr: true},
		{name: "comma", text: "a,b", wantErr: true},
		{name: "semicolon", text: "a;b", wantErr: true},
		{name: "NUL", text: "\x00", wantErr: true},
		{name: "DEL", text: "a\x7f", wantErr: true},
		{name: "invalid UTF-8", text: "a\xff", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := devices.Pair{Key: "x", Value: devices.Value{Text: tc.text, JSON: `"?"`}}
			err := devices.CheckCommand(p)
			if got := err != nil; got != tc.wantErr {
				t.Fatalf("CheckCommand(%q): got %v, want error %v", tc.text, err, tc.wantErr)
			}
			if err == nil {
				return
			}
			var ve *devices.ValueError
			if !errors.As(err, &ve) || ve.Key != "x" {
				t.Errorf("got %#v, want a *ValueError for key x", err)
			}
		})
	}
}

// TestFromTextPassesCheckCommand checks the promise in CheckCommand's doc:
// a value that came from a text frame (no separators in it) can always be
// sent back to a text lamp.
func TestFromTextPassesCheckCommand(t *testing.T) {
	for _, tc := range fromTextTests {
		if tc.wantErr || strings.ContainsAny(tc.in, " \t,;") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.schema.FromText(tc.key, tc.in)
			if err != nil {
				t.Fatalf("FromText(%q, %q): %v", tc.key, tc.in, err)
			}
			if err := devices.CheckCommand(devices.Pair{Key: tc.key, Value: got}); err != nil {
				t.Errorf("CheckCommand(%+v): got %v, want nil", got, err)
			}
		})
	}
}

func TestValueErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *devices.ValueError
		want string
	}{
		{name: "with key", err: &devices.ValueError{Key: "mode", Reason: "must be auto or manual"}, want: "mode: must be auto or manual"},
		{name: "without key", err: &devices.ValueError{Reason: "malformed pair"}, want: "malformed pair"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.err, devices.ErrInvalidValue) {
				t.Errorf("errors.Is(ErrInvalidValue): got false, want true")
			}
			if errors.Is(tc.err, devices.ErrTooManyDevices) {
				t.Errorf("errors.Is(ErrTooManyDevices): got true, want false")
			}
		})
	}
}
