package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Lamp is one lamp as the API shows it.
type Lamp struct {
	ID string `json:"id"`
	// Name is the devices file's name; "" if none.
	Name   string `json:"name,omitempty"`
	Online bool   `json:"online"`
	// LastSeen is when the lamp last identified or reported; nil if never.
	LastSeen *time.Time `json:"last_seen"`
	// BrightnessMax is the top of the lamp's brightness range.
	BrightnessMax int `json:"brightness_max"`
	// Reported is every key the lamp reported, as on <prefix>/<id>/state.
	Reported map[string]json.RawMessage `json:"reported"`
	// Desired are commands not yet written to the lamp, newest per key.
	Desired map[string]json.RawMessage `json:"desired"`
}

// lampList is GET /api/lamps's answer and the "lamps" event.
type lampList struct {
	Lamps []Lamp `json:"lamps"`
}

// lamp returns the API's view of snap.
func (s *Server) lamp(snap devices.Snapshot) Lamp {
	l := Lamp{
		ID:            snap.ID,
		Online:        snap.Online,
		BrightnessMax: devices.DefaultBrightnessMax,
		Reported:      make(map[string]json.RawMessage, len(snap.Reported)),
		Desired:       make(map[string]json.RawMessage, len(snap.Desired)),
	}
	if c, ok := s.opts.Devices().Lookup(snap.ID); ok {
		l.Name = c.Name
		if c.BrightnessMax > 0 {
			l.BrightnessMax = c.BrightnessMax
		}
	}
	if !snap.LastSeen.IsZero() {
		t := snap.LastSeen.UTC()
		l.LastSeen = &t
	}
	for k, v := range snap.Reported {
		l.Reported[k] = json.RawMessage(v.JSON)
	}
	for _, p := range snap.Desired {
		l.Desired[p.Key] = json.RawMessage(p.Value.JSON)
	}
	return l
}

// maySee reports whether u may see lamp id: read its state topic, which
// is what its lamp patterns decide (auth rule R2).
func (s *Server) maySee(u *auth.User, id string) bool {
	return s.acl.CanRead(u, topics.State(s.opts.Prefix, id))
}

// lamps returns every lamp u may see, sorted by id.
func (s *Server) lamps(u *auth.User) lampList {
	list := lampList{Lamps: []Lamp{}}
	for _, id := range s.opts.Registry.IDs() {
		if !s.maySee(u, id) {
			continue
		}
		if snap, ok := s.opts.Registry.Get(id); ok {
			list.Lamps = append(list.Lamps, s.lamp(snap))
		}
	}
	return list
}

func (s *Server) listLamps(w http.ResponseWriter, r *http.Request, u *auth.User) {
	writeJSON(w, http.StatusOK, s.lamps(u))
}

func (s *Server) getLamp(w http.ResponseWriter, r *http.Request, u *auth.User) {
	id, ok := s.lampID(w, r, u)
	if !ok {
		return
	}
	snap, ok := s.opts.Registry.Get(id)
	if !ok {
		fail(w, http.StatusNotFound, "no lamp "+strconv.Quote(id))
		return
	}
	writeJSON(w, http.StatusOK, s.lamp(snap))
}

// lampID returns the {id} of r if it is valid and u may see it, and
// otherwise answers why not.
func (s *Server) lampID(w http.ResponseWriter, r *http.Request, u *auth.User) (string, bool) {
	id := r.PathValue("id")
	if !topics.ValidID(id) {
		fail(w, http.StatusBadRequest, "invalid lamp id: want 1 to 64 of A-Z a-z 0-9 _ -")
		return "", false
	}
	if !s.maySee(u, id) {
		s.refuse(w, r, forbidden(u, "lamp "+strconv.Quote(id)+" is not among this user's lamps"))
		return "", false
	}
	return id, true
}
