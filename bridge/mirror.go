package bridge

import (
	"bytes"
	"encoding/json"
)

// The debug mirror (Options.DebugMirror) publishes every frame a lamp
// sends and is sent, not retained, on lampgw/debug/<id>/rx and .../tx, so
// `mosquitto_sub -t 'lampgw/debug/#' -v` shows a lamp's conversation. A
// token is replaced by "***" first: lampgw/# is readable by every role.

const debugRoot = "lampgw/debug/"

func (c *session) mirror(dir string, frame []byte) {
	if !c.srv.opts.DebugMirror || c.id == "" {
		return
	}
	c.srv.publish(debugRoot+c.id+"/"+dir, bytes.TrimRight(frame, "\r\n"), false)
}

// redact replaces token in a frame, raw and as a JSON string would spell
// it, with "***".
func redact(frame []byte, token string) []byte {
	if token == "" {
		return frame
	}
	out := bytes.ReplaceAll(frame, []byte(token), []byte("***"))
	if quoted, err := json.Marshal(token); err == nil {
		inner := quoted[1 : len(quoted)-1]
		out = bytes.ReplaceAll(out, inner, []byte("***"))
	}
	return out
}
