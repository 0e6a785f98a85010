package bridge

import (
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Custody is told which lamps a server holds, for running several
// bridges on one broker cluster (package cluster implements it). A server
// with a Custody subscribes no lamp's commands by itself: its Custody
// subscribes those of the lamps it wants with SubscribeLamp, and lets a
// lamp that another bridge took go with Release.
type Custody interface {
	// Attached is called once lamp id has identified on this server
	// and its online availability was published. It is called on the
	// lamp's connection goroutine, outside every lock of the server.
	Attached(id string)
	// Detached is called when lamp id's connection ended while it still
	// held id here, under the device's lock (it must not call the
	// registry or the server); it reports whether to publish id offline,
	// false when another bridge holds the lamp now.
	Detached(id string) bool
}

// SubscribeLamp subscribes to every command topic of lamp id, with reply
// addresses when the bus carries them: what a server with a Custody does
// for each lamp in its care.
func (s *Server) SubscribeLamp(id string) (unsubscribe func(), err error) {
	var unsubs []func()
	undo := func() {
		for _, u := range unsubs {
			u()
		}
	}
	for _, filter := range []string{topics.Set(s.opts.Prefix, id), topics.LampSetKeyFilter(s.opts.Prefix, id)} {
		u, err := s.subscribeCommands(filter)
		if err != nil {
			undo()
			return nil, err
		}
		unsubs = append(unsubs, u)
	}
	return undo, nil
}

// Release lets lamp id go because another bridge holds it now: the
// registry forgets it without ending its commands (the other bridge took
// them over, see devices.Registry.Release), and a connection that still
// holds it here is closed with ErrMovedAway, publishing nothing: an
// offline from here would be stale. It reports whether id was known.
func (s *Server) Release(id string) bool {
	h, ok := s.opts.Registry.Release(id)
	if c, isSession := h.(*session); isSession {
		c.fail(ErrMovedAway)
	} else if h != nil {
		h.Kick()
	}
	return ok
}

// announceOffline publishes id offline after its connection ended, unless
// a Custody says another bridge holds it now.
func (s *Server) announceOffline(id string) {
	if s.opts.Custody != nil && !s.opts.Custody.Detached(id) {
		return
	}
	s.publish(topics.Availability(s.opts.Prefix, id), []byte(topics.Offline), true)
}

var _ devices.Holder = (*session)(nil)
