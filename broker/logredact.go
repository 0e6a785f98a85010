package broker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// redactHandler keeps whole MQTT packets out of the logs. mochi logs the
// packet itself on some errors (server.go: "error processing packet" at
// warn, with "pk"), and a packet holds payloads, and a CONNECT holds a
// password. Any packets.Packet value, whatever its key, is replaced by a
// summary of its type, topic and size.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redactHandler{h.Handler.WithAttrs(red)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	switch v := a.Value.Resolve().Any().(type) {
	case packets.Packet:
		return slog.String(a.Key, summarize(&v))
	case *packets.Packet:
		return slog.String(a.Key, summarize(v))
	case []slog.Attr:
		red := make([]any, len(v))
		for i, g := range v {
			red[i] = redactAttr(g)
		}
		return slog.Group(a.Key, red...)
	}
	return a
}

func summarize(pk *packets.Packet) string {
	if pk == nil {
		return "<nil>"
	}
	name := packets.PacketNames[pk.FixedHeader.Type]
	if pk.FixedHeader.Type == packets.Publish {
		return fmt.Sprintf("%s topic=%q payload=%d bytes", name, clip(pk.TopicName, 128), len(pk.Payload))
	}
	return name
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
