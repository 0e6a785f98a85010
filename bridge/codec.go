package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Dialect is how a lamp spells its frames; commands go back in the
// dialect the lamp last used.
type Dialect uint8

// The dialects of protocol v1.
const (
	DialectText Dialect = iota // brightness=512 mode=auto
	DialectJSON                // {"brightness":512,"mode":"auto"}
)

func (d Dialect) String() string {
	if d == DialectJSON {
		return "json"
	}
	return "text"
}

// Frame is one decoded line from a lamp.
type Frame struct {
	Dialect Dialect
	// Hello is set for a HELLO line.
	Hello bool
	// ID is the HELLO id or a JSON frame's "id"; "" if absent.
	ID string
	// Token is the optional HELLO token or JSON "token".
	Token string
	// RID is a JSON command's "rid", its request id; lamps' frames have
	// none.
	RID string
	// Pairs are the accepted keys, each once (the last spelling wins), in
	// the order the lamp sent them.
	Pairs []devices.Pair
	// Refused holds one *devices.ValueError per refused key.
	Refused []error
}

// DecodeFrame decodes one frame, without its terminator, from a lamp whose
// values follow schema. A frame that cannot be decoded at all gives an
// error (ErrInvalidUTF8, ErrMalformed, ErrBadID); keys with bad values are
// left out of Pairs and listed in Refused, so the rest of the frame still
// counts.
func DecodeFrame(line []byte, schema devices.Schema) (Frame, error) {
	var f Frame
	if err := f.decode(line, schema); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// decode is DecodeFrame into f, reusing the arrays behind f.Pairs and
// f.Refused: a session's reader decodes every frame into a pooled Frame,
// so that a text report of known keys allocates nothing (the hot path of
// a fleet reporting). After an error f holds no pairs.
func (f *Frame) decode(line []byte, schema devices.Schema) error {
	clear(f.Pairs)
	clear(f.Refused)
	*f = Frame{Pairs: f.Pairs[:0], Refused: f.Refused[:0]}
	if !utf8.Valid(line) {
		return ErrInvalidUTF8
	}
	line = bytes.Trim(line, asciiSpace)
	var err error
	switch {
	case len(line) == 0:
		err = fmt.Errorf("%w: empty", ErrMalformed)
	case line[0] == '{':
		var jf Frame
		if jf, err = decodeJSON(line, schema, true); err == nil {
			*f = jf
		}
	case isHello(line):
		var hf Frame
		if hf, err = decodeHello(line); err == nil {
			*f = hf
		}
	default:
		f.decodeText(line, schema)
	}
	return err
}

// asciiSpace is what DecodeFrame trims and what makes a line blank. Only
// ASCII: the text dialect's separators are ASCII, so a value ending in
// U+00A0 or U+2028 keeps it wherever it stands in the frame.
const asciiSpace = " \t\n\v\f\r"

func isHello(line []byte) bool {
	return len(line) >= 5 && strings.EqualFold(string(line[:5]), "HELLO") &&
		(len(line) == 5 || line[5] == ' ' || line[5] == '\t')
}

func decodeHello(line []byte) (Frame, error) {
	fields := strings.Fields(string(line[5:]))
	if len(fields) == 0 || len(fields) > 2 {
		return Frame{}, fmt.Errorf("%w: want HELLO <id> [<token>]", ErrMalformed)
	}
	if !topics.ValidID(fields[0]) {
		return Frame{}, ErrBadID
	}
	f := Frame{Dialect: DialectText, Hello: true, ID: fields[0]}
	if len(fields) == 2 {
		f.Token = fields[1]
	}
	return f, nil
}

var errMalformedPair = &devices.ValueError{Reason: "malformed pair, want key=value"}

// isSeparator reports whether c separates pairs. All separators are
// ASCII, which never occurs inside a multi-byte UTF-8 sequence, so a
// frame can be split byte by byte.
func isSeparator(c byte) bool { return c == ' ' || c == '\t' || c == ',' || c == ';' }

// decodeText splits line into pairs in place: no copy of the line, and
// the known keys and their usual values are spelled from constants
// (keyString, devices.Schema.FromTextBytes).
func (f *Frame) decodeText(line []byte, schema devices.Schema) {
	f.Dialect = DialectText
	for len(line) > 0 {
		end := 0
		for end < len(line) && !isSeparator(line[end]) {
			end++
		}
		if tok := line[:end]; len(tok) > 0 {
			i := bytes.IndexAny(tok, "=:")
			if i <= 0 {
				f.Refused = append(f.Refused, errMalformedPair)
			} else {
				key := keyString(tok[:i])
				v, err := schema.FromTextBytes(key, tok[i+1:])
				f.add(key, v, err)
			}
		}
		line = line[min(end+1, len(line)):]
	}
}

// keyString is string(b) without a copy for the keys every lamp sends.
// The registry keeps keys, so any other key is copied out of the read
// buffer.
func keyString(b []byte) string {
	switch string(b) { // compared in place, not converted
	case devices.KeyBrightness:
		return devices.KeyBrightness
	case devices.KeyAmbient:
		return devices.KeyAmbient
	case devices.KeyMode:
		return devices.KeyMode
	case devices.KeyPower:
		return devices.KeyPower
	}
	return string(b)
}

func (f *Frame) add(key string, v devices.Value, err error) {
	if err != nil {
		f.Refused = append(f.Refused, err)
		return
	}
	for i := range f.Pairs {
		if f.Pairs[i].Key == key {
			f.Pairs[i].Value = v
			return
		}
	}
	f.Pairs = append(f.Pairs, devices.Pair{Key: key, Value: v})
}

// decodeJSON reads one JSON object. With control set, "id" and "token"
// are the lamp's identification; otherwise (commands from apps) they are
// refused like any reserved name.
func decodeJSON(line []byte, schema devices.Schema, control bool) (Frame, error) {
	f := Frame{Dialect: DialectJSON}
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Frame{}, fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Frame{}, fmt.Errorf("%w: bad JSON", ErrMalformed)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Frame{}, fmt.Errorf("%w: bad JSON", ErrMalformed)
		}
		if !control && key == "rid" {
			var rid string
			if json.Unmarshal(raw, &rid) != nil || rid == "" || len(rid) > MaxRIDLen || strings.ContainsFunc(rid, unicode.IsControl) {
				return f, fmt.Errorf("%w: \"rid\" must be a string of 1 to %d printable characters", ErrMalformed, MaxRIDLen)
			}
			f.RID = rid
			continue
		}
		if control && (key == "id" || key == "token") {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return Frame{}, fmt.Errorf("%w: %q must be a string", ErrMalformed, key)
			}
			if key == "token" {
				f.Token = s
			} else if !topics.ValidID(s) {
				return Frame{}, ErrBadID
			} else {
				f.ID = s
			}
			continue
		}
		v, err := schema.FromJSON(key, compact(raw))
		f.add(key, v, err)
	}
	if _, err := dec.Token(); err != nil {
		return Frame{}, fmt.Errorf("%w: bad JSON", ErrMalformed)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Frame{}, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return f, nil
}

// compact removes insignificant whitespace from objects and arrays so
// their MQTT payload is stable whatever the lamp's JSON encoder did.
func compact(raw []byte) []byte {
	if len(raw) == 0 || (raw[0] != '{' && raw[0] != '[') {
		return raw
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// DecodeCommand decodes an app's command payload: a plain value for one
// key (topic lamp/<id>/<key>/set, key set) or a JSON object of keys (topic
// lamp/<id>/set, key ""). Unlike a lamp's frame, a command is all or
// nothing: any refused key refuses the whole command, so a lamp never
// applies half of what an app asked.
func DecodeCommand(key string, payload []byte, schema devices.Schema) ([]devices.Pair, error) {
	pairs, _, err := DecodeRequest(key, payload, schema)
	return pairs, err
}

// MaxRIDLen bounds a request id.
const MaxRIDLen = 128

// DecodeRequest is DecodeCommand that also returns the request id a JSON
// command carries as "rid" ({"brightness":700,"rid":"abc"}): a string of
// 1 to MaxRIDLen printable characters, never sent to the lamp. The rid is
// returned even when the command is refused, so the refusal can be acked.
func DecodeRequest(key string, payload []byte, schema devices.Schema) (pairs []devices.Pair, rid string, err error) {
	if !utf8.Valid(payload) {
		return nil, "", ErrInvalidUTF8
	}
	var f Frame
	if key != "" {
		v, err := schema.FromText(key, string(bytes.TrimSpace(payload)))
		f.add(key, v, err)
	} else {
		var err error
		if f, err = decodeJSON(bytes.TrimSpace(payload), schema, false); err != nil {
			return nil, f.RID, err
		}
	}
	for _, p := range f.Pairs {
		if err := devices.CheckCommand(p); err != nil {
			f.Refused = append(f.Refused, err)
		}
	}
	if len(f.Refused) > 0 {
		return nil, f.RID, joinRefused(f.Refused)
	}
	if len(f.Pairs) == 0 {
		return nil, f.RID, fmt.Errorf("%w: empty command", ErrMalformed)
	}
	return f.Pairs, f.RID, nil
}

// joinRefused makes one error of the refused keys of a frame, for one ERR
// line; errors.Is still finds devices.ErrInvalidValue in it.
func joinRefused(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return refusedList(errs)
}

type refusedList []error

func (l refusedList) Error() string {
	var b strings.Builder
	for i, err := range l {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (l refusedList) Unwrap() []error { return l }

// AppendCommand appends pairs as one frame in dialect d, terminated with
// "\n": brightness=700 mode=manual, or {"brightness":700,"mode":"manual"}.
func AppendCommand(dst []byte, d Dialect, pairs []devices.Pair) []byte {
	if d == DialectJSON {
		dst = append(dst, '{')
		for i, p := range pairs {
			if i > 0 {
				dst = append(dst, ',')
			}
			// Keys are [a-z0-9_] (topics.CheckKey): nothing to escape.
			dst = append(dst, '"')
			dst = append(dst, p.Key...)
			dst = append(dst, '"', ':')
			dst = append(dst, p.Value.JSON...)
		}
		return append(dst, '}', '\n')
	}
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, p.Key...)
		dst = append(dst, '=')
		dst = append(dst, p.Value.Text...)
	}
	return append(dst, '\n')
}

// reason is err's text for a lamp or an app, without the package prefix
// of our sentinel errors.
func reason(err error) string {
	msg := err.Error()
	for _, p := range []string{"bridge: ", "devices: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// AppendError appends the line "ERR <reason>\n" for err. The package
// prefix of our sentinels is dropped and line breaks are flattened, so the
// reason is always exactly one line.
func AppendError(dst []byte, err error) []byte {
	msg := reason(err)
	dst = append(dst, "ERR "...)
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\n' || c == '\r' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\n')
}
