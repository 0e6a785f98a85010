package bridge_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
)

func num(key, n string) devices.Pair {
	return devices.Pair{Key: key, Value: devices.Value{Text: n, JSON: n}}
}

func str(key, s string) devices.Pair {
	return devices.Pair{Key: key, Value: devices.Value{Text: s, JSON: `"` + s + `"`}}
}

func raw(key, text, json string) devices.Pair {
	return devices.Pair{Key: key, Value: devices.Value{Text: text, JSON: json}}
}

var (
	id64 = strings.Repeat("a", 64)
	id65 = strings.Repeat("a", 65)
)

// frameTests is the one table of lamp frames. It drives TestDecodeFrame
// and seeds FuzzDecodeFrame, so every case written down here is also a
// starting point for the fuzzer. A row either has wantErr (DecodeFrame
// must fail with an error that errors.Is it) or want; refused is how many
// keys the frame refused.
var frameTests = []struct {
	name    string
	in      string
	want    bridge.Frame
	wantErr error
	refused int
}{
	// HELLO: the keyword is case-insensitive, the token optional.
	{name: "hello", in: "HELLO kitchen", want: bridge.Frame{Hello: true, ID: "kitchen"}},
	{name: "hello lower case", in: "hello kitchen", want: bridge.Frame{Hello: true, ID: "kitchen"}},
	{name: "hello mixed case", in: "HeLLo kitchen", want: bridge.Frame{Hello: true, ID: "kitchen"}},
	{name: "hello token", in: "HELLO kitchen s3cret", want: bridge.Frame{Hello: true, ID: "kitchen", Token: "s3cret"}},
	{name: "hello tabs and spaces", in: " HELLO\tkitchen  s3cret\t", want: bridge.Frame{Hello: true, ID: "kitchen", Token: "s3cret"}},
	{name: "hello id charset", in: "HELLO Lamp_01-b", want: bridge.Frame{Hello: true, ID: "Lamp_01-b"}},
	{name: "hello id 64 chars", in: "HELLO " + id64, want: bridge.Frame{Hello: true, ID: id64}},
	{name: "hello id 65 chars", in: "HELLO " + id65, wantErr: bridge.ErrBadID},
	{name: "hello id slash", in: "HELLO a/b", wantErr: bridge.ErrBadID},
	{name: "hello id hash", in: "HELLO #", wantErr: bridge.ErrBadID},
	{name: "hello id plus", in: "HELLO +", wantErr: bridge.ErrBadID},
	{name: "hello id dot", in: "HELLO a.b", wantErr: bridge.ErrBadID},
	{name: "hello id non-ASCII", in: "HELLO küche", wantErr: bridge.ErrBadID},
	{name: "hello without id", in: "HELLO", wantErr: bridge.ErrMalformed},
	{name: "hello without id trailing space", in: "HELLO   ", wantErr: bridge.ErrMalformed},
	{name: "hello too many fields", in: "HELLO kitchen s3cret extra", wantErr: bridge.ErrMalformed},
	// Not HELLO: the keyword must be a word of its own.
	{name: "hello glued to id", in: "HELLOkitchen", want: bridge.Frame{}, refused: 1},
	{name: "hello as a key", in: "hello=1", want: bridge.Frame{Pairs: []devices.Pair{num("hello", "1")}}},

	// JSON identification.
	{name: "json id", in: `{"id":"kitchen"}`, want: bridge.Frame{Dialect: bridge.DialectJSON, ID: "kitchen"}},
	{name: "json id token report", in: `{"id":"kitchen","token":"s3cret","brightness":512}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, ID: "kitchen", Token: "s3cret", Pairs: []devices.Pair{num("brightness", "512")}}},
	{name: "json id last", in: `{"brightness":512,"id":"kitchen"}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, ID: "kitchen", Pairs: []devices.Pair{num("brightness", "512")}}},
	{name: "json id slash", in: `{"id":"a/b"}`, wantErr: bridge.ErrBadID},
	{name: "json id hash", in: `{"id":"#"}`, wantErr: bridge.ErrBadID},
	{name: "json id 65 chars", in: `{"id":"` + id65 + `"}`, wantErr: bridge.ErrBadID},
	{name: "json id empty", in: `{"id":""}`, wantErr: bridge.ErrBadID},
	{name: "json id number", in: `{"id":5}`, wantErr: bridge.ErrMalformed},
	{name: "json id object", in: `{"id":{"a":"b"}}`, wantErr: bridge.ErrMalformed},
	{name: "json token number", in: `{"id":"kitchen","token":5}`, wantErr: bridge.ErrMalformed},

	// Text reports and their separators.
	{name: "text spaces", in: "brightness=512 ambient=830 mode=auto",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "512"), num("ambient", "830"), str("mode", "auto")}}},
	{name: "text colon comma semicolon", in: "brightness:512,ambient:830;mode:auto",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "512"), num("ambient", "830"), str("mode", "auto")}}},
	{name: "text tabs", in: "brightness=512\tambient=830",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "512"), num("ambient", "830")}}},
	{name: "text runs of separators", in: " ,;brightness=512 ,; \tambient=830;, ",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "512"), num("ambient", "830")}}},
	{name: "text enum case", in: "mode=MANUAL power=On",
		want: bridge.Frame{Pairs: []devices.Pair{str("mode", "manual"), str("power", "on")}}},
	{name: "text pass-through typing", in: "color_temp=4000 night=true scene=reading ratio=-1.5e3",
		want: bridge.Frame{Pairs: []devices.Pair{num("color_temp", "4000"), num("night", "true"), str("scene", "reading"), num("ratio", "-1.5e3")}}},
	{name: "text value keeps later = and :", in: "url=a=b:c", want: bridge.Frame{Pairs: []devices.Pair{str("url", "a=b:c")}}},
	{name: "text colon then equals", in: "k:a=b", want: bridge.Frame{Pairs: []devices.Pair{str("k", "a=b")}}},
	// id and token identify a lamp; as text keys they'd publish a token.
	{name: "text id is reserved", in: "id=kitchen", refused: 1},
	{name: "text token is reserved", in: "token=s3cret brightness=1", want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "1")}}, refused: 1},
	{name: "text duplicate last wins", in: "brightness=1 brightness=2",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "2")}}},
	{name: "text duplicate keeps first position", in: "a=1 b=2 a=3",
		want: bridge.Frame{Pairs: []devices.Pair{num("a", "3"), num("b", "2")}}},
	{name: "text duplicate refused after accepted", in: "brightness=1 brightness=5000",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "1")}}, refused: 1},

	// A bad value refuses only its key.
	{name: "text out of range", in: "brightness=5000 mode=auto",
		want: bridge.Frame{Pairs: []devices.Pair{str("mode", "auto")}}, refused: 1},
	{name: "text all refused", in: "brightness=5000 mode=party", want: bridge.Frame{}, refused: 2},
	{name: "text reserved key", in: "state=1 brightness=2",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "2")}}, refused: 1},
	{name: "text upper-case key", in: "Brightness=2", want: bridge.Frame{}, refused: 1},
	{name: "text key too long", in: "k" + strings.Repeat("x", 32) + "=1", want: bridge.Frame{}, refused: 1},
	{name: "text empty value", in: "x= brightness=", want: bridge.Frame{}, refused: 2},
	{name: "text control character", in: "x=a\x01b y=1", want: bridge.Frame{Pairs: []devices.Pair{num("y", "1")}}, refused: 1},
	{name: "text no separator", in: "brightness", want: bridge.Frame{}, refused: 1},
	{name: "text empty key", in: "=5 :6", want: bridge.Frame{}, refused: 2},
	{name: "text malformed among good", in: "junk brightness=7",
		want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "7")}}, refused: 1},
	{name: "array is text", in: "[1,2]", want: bridge.Frame{}, refused: 2},
	// Only ASCII whitespace is trimmed: Unicode spaces are value bytes like
	// any other, wherever the value stands (found by FuzzDecodeFrame: a
	// trailing U+00A0 was lost when the value came last in the frame).
	{name: "text ASCII whitespace trimmed", in: "\v\fbrightness=5\r\n", want: bridge.Frame{Pairs: []devices.Pair{num("brightness", "5")}}},
	// Unicode spaces are no separators, but no value may hold one: a
	// lamp's parser might split there when the value comes back as a
	// command.
	{name: "text NBSP at end refused", in: "a=x\u00a0", refused: 1},
	{name: "text NBSP refused, rest kept", in: "a=x\u00a0,b=2", want: bridge.Frame{Pairs: []devices.Pair{num("b", "2")}}, refused: 1},
	{name: "text line separator value", in: "a=\u2028 b", refused: 2},
	{name: "text NBSP before hello", in: "\u00a0HELLO kitchen", want: bridge.Frame{}, refused: 2},
	{name: "json NBSP before object", in: "\u00a0{}", want: bridge.Frame{}, refused: 1},
	{name: "json NBSP after object", in: "{}\u00a0", wantErr: bridge.ErrMalformed},

	// JSON reports.
	{name: "json report", in: `{"brightness":512,"ambient":830,"mode":"auto"}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{num("brightness", "512"), num("ambient", "830"), str("mode", "auto")}}},
	{name: "json whitespace", in: " { \"brightness\" : 512 ,\t\"mode\":\"AUTO\" } ",
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{num("brightness", "512"), str("mode", "auto")}}},
	{name: "json empty object", in: `{}`, want: bridge.Frame{Dialect: bridge.DialectJSON}},
	{name: "json pass-through", in: `{"scene":"read ing","night":false,"x":null,"n":1.5}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{str("scene", "read ing"), num("night", "false"), num("x", "null"), num("n", "1.5")}}},
	{name: "json nested compacted", in: `{"rgb": {"r": 1, "g": [2, 3]}}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{raw("rgb", `{"r":1,"g":[2,3]}`, `{"r":1,"g":[2,3]}`)}}},
	{name: "json escaped key", in: `{"\u0062rightness":3}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{num("brightness", "3")}}},
	{name: "json duplicate last wins", in: `{"brightness":1,"mode":"auto","brightness":2}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{num("brightness", "2"), str("mode", "auto")}}},
	{name: "json refused key", in: `{"brightness":5000,"mode":"auto","state":1,"Bad":1}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{str("mode", "auto")}}, refused: 3},
	{name: "json wrong type", in: `{"brightness":"512"}`, want: bridge.Frame{Dialect: bridge.DialectJSON}, refused: 1},
	{name: "json empty string", in: `{"note":"","brightness":1}`,
		want: bridge.Frame{Dialect: bridge.DialectJSON, Pairs: []devices.Pair{num("brightness", "1")}}, refused: 1},
	{name: "json trailing data", in: `{"brightness":1} x`, wantErr: bridge.ErrMalformed},
	{name: "json two objects", in: `{"brightness":1}{"mode":"auto"}`, wantErr: bridge.ErrMalformed},
	{name: "json extra brace", in: `{"brightness":1}}`, wantErr: bridge.ErrMalformed},
	{name: "json unterminated", in: `{"brightness":1`, wantErr: bridge.ErrMalformed},
	{name: "json missing value", in: `{"brightness":}`, wantErr: bridge.ErrMalformed},
	{name: "json trailing comma", in: `{"brightness":1,}`, wantErr: bridge.ErrMalformed},
	{name: "json missing comma", in: `{"a":1 "b":2}`, wantErr: bridge.ErrMalformed},
	{name: "json missing colon", in: `{"a" 1}`, wantErr: bridge.ErrMalformed},
	{name: "json unquoted key", in: `{a:1}`, wantErr: bridge.ErrMalformed},
	{name: "json single quotes", in: `{'a':1}`, wantErr: bridge.ErrMalformed},
	{name: "json bare brace", in: `{`, wantErr: bridge.ErrMalformed},
	{name: "json bad literal", in: `{"a":tru}`, wantErr: bridge.ErrMalformed},

	// Bytes that are no frame at all.
	{name: "empty", in: "", wantErr: bridge.ErrMalformed},
	{name: "blank", in: " \t ", wantErr: bridge.ErrMalformed},
	{name: "invalid UTF-8 text", in: "brightness=\xff", wantErr: bridge.ErrInvalidUTF8},
	{name: "invalid UTF-8 json", in: `{"x":"` + "\xc3\x28" + `"}`, wantErr: bridge.ErrInvalidUTF8},
	{name: "invalid UTF-8 hello", in: "HELLO \xfe", wantErr: bridge.ErrInvalidUTF8},
	{name: "binary garbage", in: "\xde\xad\xbe\xef\x00\x01", wantErr: bridge.ErrInvalidUTF8},
	{name: "control bytes", in: "\x00\x01\x02\x1b[2J", want: bridge.Frame{}, refused: 1},
}

// checkFrame compares a decoded frame with want; Refused is compared by
// count, and nil and empty Pairs are the same.
func checkFrame(t *testing.T, got, want bridge.Frame, refused int) {
	t.Helper()
	if got.Dialect != want.Dialect || got.Hello != want.Hello || got.ID != want.ID || got.Token != want.Token {
		t.Errorf("got Dialect=%v Hello=%v ID=%q Token=%q, want Dialect=%v Hello=%v ID=%q Token=%q",
			got.Dialect, got.Hello, got.ID, got.Token, want.Dialect, want.Hello, want.ID, want.Token)
	}
	if len(got.Pairs)+len(want.Pairs) > 0 && !reflect.DeepEqual(got.Pairs, want.Pairs) {
		t.Errorf("Pairs: got %v, want %v", got.Pairs, want.Pairs)
	}
	if len(got.Refused) != refused {
		t.Errorf("Refused: got %d %v, want %d", len(got.Refused), got.Refused, refused)
	}
	for _, err := range got.Refused {
		var ve *devices.ValueError
		if !errors.As(err, &ve) || !errors.Is(err, devices.ErrInvalidValue) {
			t.Errorf("Refused: got %T %v, want a *devices.ValueError", err, err)
		}
	}
}

func TestDecodeFrame(t *testing.T) {
	for _, tc := range frameTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bridge.DecodeFrame([]byte(tc.in), devices.Schema{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DecodeFrame(%q): got error %v, want %v", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeFrame(%q): got error %v, want nil", tc.in, err)
			}
			checkFrame(t, got, tc.want, tc.refused)
		})
	}
}

// TestDecodeFrameSchema checks that the schema given is the one used.
func TestDecodeFrameSchema(t *testing.T) {
	s := devices.Schema{BrightnessMax: 255}
	tests := []struct {
		name    string
		in      string
		want    []devices.Pair
		refused int
	}{
		{name: "text at max", in: "brightness=255", want: []devices.Pair{num("brightness", "255")}},
		{name: "text over max", in: "brightness=256", refused: 1},
		{name: "json over max", in: `{"brightness":1023}`, refused: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bridge.DecodeFrame([]byte(tc.in), s)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Pairs)+len(tc.want) > 0 && !reflect.DeepEqual(got.Pairs, tc.want) {
				t.Errorf("Pairs: got %v, want %v", got.Pairs, tc.want)
			}
			if len(got.Refused) != tc.refused {
				t.Errorf("Refused: got %v, want %d", got.Refused, tc.refused)
			}
		})
	}
}

// checkOneLine fails unless line is "ERR <something>\n" with no other
// line terminator in it, so a lamp reads exactly one frame.
func checkOneLine(t *testing.T, line []byte) {
	t.Helper()
	if !bytes.HasPrefix(line, []byte("ERR ")) || !bytes.HasSuffix(line, []byte("\n")) {
		t.Errorf("AppendError: got %q, want ERR <reason>\\n", line)
	}
	if i := bytes.IndexAny(line, "\r\n"); i != len(line)-1 {
		t.Errorf("AppendError: got %q, a line terminator at %d, want one line", line, i)
	}
}

// FuzzDecodeFrame checks, for any frame: DecodeFrame never panics; a
// refused frame's error and every refused key give a one-line ERR; every
// accepted key is a valid lamp key; and the accepted pairs, written back
// with AppendCommand in the frame's dialect, decode to the same pairs, so
// what the gateway publishes can always be sent back to the lamp.
func FuzzDecodeFrame(f *testing.F) {
	for _, tc := range frameTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, err := bridge.DecodeFrame(line, devices.Schema{})
		if err != nil {
			if !errors.Is(err, bridge.ErrInvalidUTF8) && !errors.Is(err, bridge.ErrMalformed) && !errors.Is(err, bridge.ErrBadID) {
				t.Errorf("DecodeFrame(%q): got error %v, want one of the documented sentinels", line, err)
			}
			checkOneLine(t, bridge.AppendError(nil, err))
			return
		}
		for _, e := range fr.Refused {
			if !errors.Is(e, devices.ErrInvalidValue) {
				t.Errorf("Refused: got %v, want a devices.ErrInvalidValue", e)
			}
			checkOneLine(t, bridge.AppendError(nil, e))
		}
		if len(fr.Refused) > 0 {
			checkOneLine(t, bridge.AppendError(nil, errors.Join(fr.Refused...)))
		}
		seen := make(map[string]bool)
		for _, p := range fr.Pairs {
			if err := devices.CheckKey(p.Key); err != nil {
				t.Errorf("accepted key %q: CheckKey got %v, want nil", p.Key, err)
			}
			if seen[p.Key] {
				t.Errorf("key %q: got twice in Pairs, want once", p.Key)
			}
			seen[p.Key] = true
		}
		if fr.Hello && len(fr.Pairs) > 0 {
			t.Errorf("HELLO frame: got Pairs %v, want none", fr.Pairs)
		}
		if len(fr.Pairs) == 0 {
			return
		}
		enc := bridge.AppendCommand(nil, fr.Dialect, fr.Pairs)
		if i := bytes.IndexAny(enc, "\r\n"); i != len(enc)-1 {
			t.Fatalf("AppendCommand(%v): got %q, want exactly one line", fr.Pairs, enc)
		}
		back, err := bridge.DecodeFrame(enc[:len(enc)-1], devices.Schema{})
		if err != nil {
			t.Fatalf("round trip of %q via %q: got error %v, want nil", line, enc, err)
		}
		if back.Dialect != fr.Dialect || back.Hello || back.ID != "" || len(back.Refused) != 0 {
			t.Errorf("round trip of %q via %q: got %+v, want dialect %v, no id, nothing refused", line, enc, back, fr.Dialect)
		}
		if !reflect.DeepEqual(back.Pairs, fr.Pairs) {
			t.Errorf("round trip of %q via %q: got %v, want %v", line, enc, back.Pairs, fr.Pairs)
		}
	})
}

// commandTests feeds TestDecodeCommand and seeds FuzzDecodeCommand.
var commandTests = []struct {
	name    string
	key     string // "" for a JSON object on lamp/<id>/set
	payload string
	want    []devices.Pair
	wantErr error
	// wantText, if set, must appear in the error text.
	wantText string
}{
	{name: "key number", key: "brightness", payload: "700", want: []devices.Pair{num("brightness", "700")}},
	{name: "key trimmed", key: "brightness", payload: " 700\r\n", want: []devices.Pair{num("brightness", "700")}},
	{name: "key enum case", key: "mode", payload: "MANUAL", want: []devices.Pair{str("mode", "manual")}},
	{name: "key pass-through", key: "scene", payload: "reading", want: []devices.Pair{str("scene", "reading")}},
	{name: "key pass-through number", key: "color_temp", payload: "4000", want: []devices.Pair{num("color_temp", "4000")}},
	{name: "key out of range", key: "brightness", payload: "5000", wantErr: devices.ErrInvalidValue, wantText: "brightness: out of range 0..1023"},
	{name: "key bad enum", key: "power", payload: "dim", wantErr: devices.ErrInvalidValue},
	{name: "key empty", key: "scene", payload: "", wantErr: devices.ErrInvalidValue},
	{name: "key space in value", key: "scene", payload: "read ing", wantErr: devices.ErrInvalidValue, wantText: "must not contain"},
	{name: "key comma in value", key: "scene", payload: "a,b", wantErr: devices.ErrInvalidValue},
	{name: "key semicolon in value", key: "scene", payload: "a;b", wantErr: devices.ErrInvalidValue},
	{name: "key newline in value", key: "scene", payload: "a\nb", wantErr: devices.ErrInvalidValue},
	{name: "key reserved", key: "state", payload: "1", wantErr: devices.ErrInvalidValue},
	{name: "key invalid", key: "Brightness", payload: "1", wantErr: devices.ErrInvalidValue},
	{name: "key id", key: "id", payload: "other", wantErr: devices.ErrInvalidValue},
	{name: "key token", key: "token", payload: "x", wantErr: devices.ErrInvalidValue},
	{name: "key invalid UTF-8", key: "scene", payload: "\xff", wantErr: bridge.ErrInvalidUTF8},

	{name: "json", payload: `{"brightness":700,"mode":"manual"}`, want: []devices.Pair{num("brightness", "700"), str("mode", "manual")}},
	{name: "json whitespace", payload: " {\"brightness\": 700}\n", want: []devices.Pair{num("brightness", "700")}},
	{name: "json duplicate last wins", payload: `{"brightness":1,"brightness":2}`, want: []devices.Pair{num("brightness", "2")}},
	{name: "json pass-through", payload: `{"scene":"reading","n":1.5,"on":true}`, want: []devices.Pair{str("scene", "reading"), num("n", "1.5"), num("on", "true")}},
	{name: "json all or nothing", payload: `{"brightness":700,"mode":"party"}`, wantErr: devices.ErrInvalidValue, wantText: "mode: must be auto or manual"},
	{name: "json every refusal named", payload: `{"brightness":5000,"mode":"party"}`, wantErr: devices.ErrInvalidValue,
		wantText: "brightness: out of range 0..1023; mode: must be auto or manual"},
	{name: "json string with space", payload: `{"brightness":1,"scene":"a b"}`, wantErr: devices.ErrInvalidValue},
	{name: "json string with newline", payload: `{"scene":"a\nb"}`, wantErr: devices.ErrInvalidValue},
	{name: "json string with comma", payload: `{"scene":"a,b"}`, wantErr: devices.ErrInvalidValue},
	{name: "json empty string", payload: `{"scene":""}`, wantErr: devices.ErrInvalidValue},
	{name: "json object value has commas", payload: `{"rgb":{"r":1,"g":2}}`, wantErr: devices.ErrInvalidValue},
	{name: "json id refused", payload: `{"id":"other","brightness":1}`, wantErr: devices.ErrInvalidValue},
	{name: "json token refused", payload: `{"token":"x","brightness":1}`, wantErr: devices.ErrInvalidValue},
	{name: "json reserved", payload: `{"set":1}`, wantErr: devices.ErrInvalidValue},
	{name: "json empty object", payload: `{}`, wantErr: bridge.ErrMalformed},
	{name: "json array", payload: `[1]`, wantErr: bridge.ErrMalformed},
	{name: "json plain value", payload: `700`, wantErr: bridge.ErrMalformed},
	{name: "json empty", payload: ``, wantErr: bridge.ErrMalformed},
	{name: "json trailing data", payload: `{"brightness":1} {}`, wantErr: bridge.ErrMalformed},
	{name: "json bad", payload: `{"brightness":}`, wantErr: bridge.ErrMalformed},
	{name: "json invalid UTF-8", payload: "{\"scene\":\"\xff\"}", wantErr: bridge.ErrInvalidUTF8},
}

func TestDecodeCommand(t *testing.T) {
	for _, tc := range commandTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bridge.DecodeCommand(tc.key, []byte(tc.payload), devices.Schema{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DecodeCommand(%q, %q): got (%v, %v), want error %v", tc.key, tc.payload, got, err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("pairs with an error: got %v, want nil", got)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("error text: got %q, want it to contain %q", err.Error(), tc.wantText)
				}
				checkOneLine(t, bridge.AppendError(nil, err))
				return
			}
			if err != nil {
				t.Fatalf("DecodeCommand(%q, %q): got error %v, want %v", tc.key, tc.payload, err, tc.want)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// Every accepted command is text-safe: a text lamp reads back
			// exactly what was sent.
			for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
				enc := bridge.AppendCommand(nil, d, got)
				back, err := bridge.DecodeFrame(bytes.TrimSuffix(enc, []byte("\n")), devices.Schema{})
				if err != nil || len(back.Refused) > 0 || !reflect.DeepEqual(back.Pairs, got) {
					t.Errorf("%v lamp reading %q: got (%v, %v, refused %v), want %v", d, enc, back.Pairs, err, back.Refused, got)
				}
			}
		})
	}
}

func TestAppendCommand(t *testing.T) {
	pairs := []devices.Pair{num("brightness", "700"), str("mode", "manual"), raw("scene", `a"b`, `"a\"b"`)}
	tests := []struct {
		name    string
		dst     string
		dialect bridge.Dialect
		pairs   []devices.Pair
		want    string
	}{
		{name: "text", dialect: bridge.DialectText, pairs: pairs, want: "brightness=700 mode=manual scene=a\"b\n"},
		{name: "json", dialect: bridge.DialectJSON, pairs: pairs, want: `{"brightness":700,"mode":"manual","scene":"a\"b"}` + "\n"},
		{name: "text one pair", dialect: bridge.DialectText, pairs: pairs[:1], want: "brightness=700\n"},
		{name: "json one pair", dialect: bridge.DialectJSON, pairs: pairs[:1], want: "{\"brightness\":700}\n"},
		{name: "text appends", dst: "prev\n", dialect: bridge.DialectText, pairs: pairs[1:2], want: "prev\nmode=manual\n"},
		{name: "json appends", dst: "prev\n", dialect: bridge.DialectJSON, pairs: pairs[1:2], want: "prev\n{\"mode\":\"manual\"}\n"},
		{name: "text none", dialect: bridge.DialectText, want: "\n"},
		{name: "json none", dialect: bridge.DialectJSON, want: "{}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bridge.AppendCommand([]byte(tc.dst), tc.dialect, tc.pairs)
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDialectString(t *testing.T) {
	for d, want := range map[bridge.Dialect]string{bridge.DialectText: "text", bridge.DialectJSON: "json"} {
		if got := d.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		name string
		dst  string
		err  error
		want string
	}{
		{name: "sentinel", err: bridge.ErrNotIdentified, want: "ERR not identified\n"},
		{name: "wrapped", err: fmt.Errorf("%w (max %d bytes)", bridge.ErrFrameTooLong, 1024), want: "ERR frame too long (max 1024 bytes)\n"},
		{name: "already identified", err: fmt.Errorf("%w as %s", bridge.ErrAlreadyIdentified, "kitchen"), want: "ERR already identified as kitchen\n"},
		{name: "value error", err: &devices.ValueError{Key: "brightness", Reason: "out of range 0..1023"}, want: "ERR brightness: out of range 0..1023\n"},
		{name: "newline flattened", err: errors.New("a\nb"), want: "ERR a b\n"},
		{name: "carriage return flattened", err: errors.New("a\r\nb\r"), want: "ERR a  b \n"},
		{name: "joined", err: errors.Join(bridge.ErrIDMismatch, bridge.ErrNoValues), want: "ERR id mismatch bridge: no valid values\n"},
		{name: "appends", dst: "x\n", err: bridge.ErrIDMismatch, want: "x\nERR id mismatch\n"},
		{name: "prefix only at start", err: errors.New("x bridge: y"), want: "ERR x bridge: y\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bridge.AppendError([]byte(tc.dst), tc.err)
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			checkOneLine(t, got[len(tc.dst):])
		})
	}
}

func BenchmarkDecodeText(b *testing.B) {
	line := []byte("brightness=512 ambient=830 mode=auto")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := bridge.DecodeFrame(line, devices.Schema{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	line := []byte(`{"brightness":512,"ambient":830,"mode":"auto"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := bridge.DecodeFrame(line, devices.Schema{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendCommand(b *testing.B) {
	pairs := []devices.Pair{num("brightness", "512"), num("ambient", "830"), str("mode", "auto")}
	for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
		b.Run(d.String(), func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 128)
			for b.Loop() {
				buf = bridge.AppendCommand(buf[:0], d, pairs)
			}
		})
	}
}

// FuzzDecodeCommand checks, for any command topic key and payload:
// DecodeCommand never panics; it refuses with a documented sentinel and a
// one-line ERR, or accepts pairs that are valid lamp keys, each once, and
// whose frame (text and JSON) is one line that decodes back to them, so
// no app can make the gateway write two frames or a half frame to a lamp.
func FuzzDecodeCommand(f *testing.F) {
	for _, tc := range commandTests {
		f.Add(tc.key, []byte(tc.payload))
	}
	f.Fuzz(func(t *testing.T, key string, payload []byte) {
		pairs, err := bridge.DecodeCommand(key, payload, devices.Schema{})
		if err != nil {
			if !errors.Is(err, devices.ErrInvalidValue) && !errors.Is(err, bridge.ErrMalformed) && !errors.Is(err, bridge.ErrInvalidUTF8) {
				t.Errorf("DecodeCommand(%q, %q): got error %v, want a documented sentinel", key, payload, err)
			}
			checkOneLine(t, bridge.AppendError(nil, err))
			return
		}
		if len(pairs) == 0 {
			t.Fatalf("DecodeCommand(%q, %q): no error and no pairs", key, payload)
		}
		seen := make(map[string]bool)
		for _, p := range pairs {
			if err := devices.CheckKey(p.Key); err != nil || seen[p.Key] {
				t.Errorf("pair %q: CheckKey %v, seen before %v", p.Key, err, seen[p.Key])
			}
			seen[p.Key] = true
		}
		for _, d := range []bridge.Dialect{bridge.DialectText, bridge.DialectJSON} {
			frame := bridge.AppendCommand(nil, d, pairs)
			if i := bytes.IndexAny(frame, "\r\n"); i != len(frame)-1 || frame[i] != '\n' {
				t.Fatalf("%v frame %q: want one line ending in \\n", d, frame)
			}
			back, err := bridge.DecodeFrame(bytes.TrimSuffix(frame, []byte("\n")), devices.Schema{})
			if err != nil || len(back.Refused) > 0 || len(back.Pairs) != len(pairs) {
				t.Fatalf("%v frame %q of %v: decodes to %v, %v, %v", d, frame, pairs, back.Pairs, back.Refused, err)
			}
			for i, p := range pairs {
				// Text has no types: {"a":"0"} is written a=0 and read
				// back as the number 0. The text is what must survive.
				same := back.Pairs[i].Key == p.Key && back.Pairs[i].Value.Text == p.Value.Text
				if d == bridge.DialectJSON {
					same = back.Pairs[i] == p
				}
				if !same {
					t.Errorf("%v frame %q: pair %d decodes to %v, want %v", d, frame, i, back.Pairs[i], p)
				}
			}
		}
	})
}
