package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// KeyResult is where one key of a command ended, or stands.
type KeyResult struct {
	Status devices.AckStatus `json:"status"`
	Value  json.RawMessage   `json:"value,omitempty"`
}

// CommandResult is POST /api/lamps/{id}/set's answer.
type CommandResult struct {
	ID  string `json:"id"`
	RID string `json:"rid"`
	// Status is the least successful of the keys' statuses (see rank),
	// or rejected.
	Status devices.AckStatus `json:"status"`
	// Error is why a command was rejected.
	Error string               `json:"error,omitempty"`
	Keys  map[string]KeyResult `json:"keys,omitempty"`
}

// rank orders statuses from the least successful, which a command's
// Status reports when its keys differ.
var rank = map[devices.AckStatus]int{
	devices.Rejected:    0,
	devices.Expired:     1,
	devices.Superseded:  2,
	devices.Unconfirmed: 3,
	devices.Queued:      4,
	devices.Written:     5,
	devices.Confirmed:   6,
}

// final reports whether a command's key is done with st.
func final(st devices.AckStatus) bool {
	switch st {
	case devices.Confirmed, devices.Unconfirmed, devices.Superseded, devices.Expired, devices.Rejected:
		return true
	}
	return false
}

func (s *Server) setLamp(w http.ResponseWriter, r *http.Request, u *auth.User) {
	id, ok := s.lampID(w, r, u)
	if !ok {
		return
	}
	topic := topics.Set(s.opts.Prefix, id)
	if !s.acl.CanWrite(u, topic) {
		s.refuse(w, r, forbidden(u, "role "+u.Role.String()+" may not command lamps"))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxCommand)))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("command longer than %d bytes (--max-frame)", s.opts.MaxCommand))
		return
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "reading the body failed")
		return
	}
	rid := newRID()
	payload, keys, err := withRID(body, rid)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(payload) > s.opts.MaxCommand {
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("command with its rid longer than %d bytes (--max-frame)", s.opts.MaxCommand))
		return
	}

	// Listen before publishing: the first ack may come at once.
	acks := s.hub.await(id, rid, 3*len(keys)+2)
	defer s.hub.unawait(rid)
	if err := s.opts.Bus.Publish(topic, payload, 1, false); err != nil {
		s.log.Error().Err(err).Str("device", id).Msg("API command not published")
		fail(w, http.StatusServiceUnavailable, "the gateway is not taking commands now")
		return
	}
	s.log.Debug().Str("device", id).Str("rid", rid).Str("user", u.Name).Msg("API command")

	res := CommandResult{ID: id, RID: rid, Keys: make(map[string]KeyResult, len(keys))}
	wait := s.opts.ConfirmTimeout + ackMargin
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case a := <-acks:
			if a.Status == devices.Rejected && a.Key == "" {
				res.Status, res.Error, res.Keys = devices.Rejected, a.Error, nil
				writeJSON(w, http.StatusBadRequest, res)
				return
			}
			res.Keys[a.Key] = KeyResult{Status: a.Status, Value: a.Value}
			if code, done := res.settle(keys); done {
				writeJSON(w, code, res)
				return
			}
		case <-timer.C:
			if len(res.Keys) == 0 {
				fail(w, http.StatusGatewayTimeout, fmt.Sprintf("no acknowledgement of rid %s within %v", rid, wait))
				return
			}
			res.settle(keys)
			writeJSON(w, http.StatusAccepted, res)
			return
		case <-r.Context().Done():
			return // the client is gone
		case <-s.done:
			fail(w, http.StatusServiceUnavailable, "the gateway is shutting down")
			return
		}
	}
}

// settle sets res.Status from its keys and reports whether the answer is
// ready, with its code: every key final (200), or every key queued or
// final with one queued (202, the lamp is offline).
func (res *CommandResult) settle(keys []string) (code int, done bool) {
	res.Status = devices.Confirmed
	done, queued := true, false
	for _, k := range keys {
		kr, ok := res.Keys[k]
		switch {
		case !ok:
			done = false
			continue
		case kr.Status == devices.Queued:
			queued = true
		case !final(kr.Status):
			done = false
		}
		if rank[kr.Status] < rank[res.Status] {
			res.Status = kr.Status
		}
	}
	if queued {
		return http.StatusAccepted, done
	}
	return http.StatusOK, done
}

// newRID returns a request id no app will have chosen.
func newRID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return "api-" + hex.EncodeToString(b[:])
}

// withRID returns body, a JSON object of keys, with "rid" added as its
// first member, and the object's keys. The rest of body is left as the
// client wrote it, for the bridge to validate as it does an MQTT app's
// command.
func withRID(body []byte, rid string) (payload []byte, keys []string, err error) {
	body = bytes.TrimSpace(body)
	var obj map[string]json.RawMessage
	if !utf8.Valid(body) || len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &obj) != nil {
		return nil, nil, fmt.Errorf(`body: want a JSON object of keys, like {"brightness":700}`)
	}
	if _, ok := obj["rid"]; ok {
		return nil, nil, fmt.Errorf(`body: "rid" is chosen by the API and comes back in the answer`)
	}
	for k := range obj {
		keys = append(keys, k)
	}
	payload = append([]byte(`{"rid":`), jsonString(rid)...)
	if rest := bytes.TrimSpace(body[1:]); rest[0] != '}' {
		payload = append(payload, ',')
		payload = append(payload, rest...)
	} else {
		payload = append(payload, '}')
	}
	return payload, keys, nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
