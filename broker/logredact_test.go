package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

func TestRedactHandlerKeepsPacketsOutOfLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(redactHandler{zerolog.NewSlogHandler(zerolog.New(&buf))})
	publish := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "lamp/kitchen/set",
		Payload:     []byte("SECRET-PAYLOAD"),
	}
	connect := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect:     packets.ConnectParams{Username: []byte("alice"), Password: []byte("SECRET-PASSWORD"), PasswordFlag: true},
	}
	// As mochi logs them: server.go "error processing packet" passes the
	// packet by value under "pk"; others pass pointers or group them.
	log.Warn("error processing packet", "client", "c1", "pk", publish)
	log.Debug("failed publishing packet", "packet", &connect)
	log.With("pk", connect).Info("with")
	log.Info("grouped", slog.Group("g", "pk", publish))

	out := buf.String()
	for _, secret := range []string{"SECRET-PAYLOAD", "SECRET-PASSWORD"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %s:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"pk":"Publish topic=\"lamp/kitchen/set\" payload=14 bytes"`, `"packet":"Connect"`, `"client":"c1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
