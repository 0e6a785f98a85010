package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/store"
	"github.com/lampgw/lampgw/topics"
)

// The data dir's namespaces (see package store): the broker's retained
// messages and sessions, and the registry's pending commands.
const (
	nsBroker  = "mqtt/"
	nsPending = "devices/pending/"
)

// checkDataDir refuses a data dir that is a file, or below one, as a bad
// setting: New finds it before anything is opened or bound.
func checkDataDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := store.CheckDir(dir); err != nil {
		return &SettingError{Setting: "data-dir", Err: err}
	}
	return nil
}

// openStoreLocked opens the data dir. If it does not open and
// Options.DataReset is set, it moves the dir aside and opens a new one;
// a dir that opens is kept, reset or not. In use by another process
// (store.ErrLocked) is never reset: moving a dir another lampgw writes
// to would lose its writes.
func (g *Gateway) openStoreLocked() error {
	dir := g.opts.DataDir
	if dir == "" {
		return nil
	}
	opts := store.Options{Dir: dir, Logger: g.log.With().Str("component", "store").Logger()}
	db, stats, err := store.Open(opts, nsBroker, nsPending)
	resettable := err != nil && !errors.Is(err, store.ErrLocked) && !errors.Is(err, store.ErrNotDir)
	switch {
	case resettable && g.opts.DataReset:
		moved, merr := store.MoveAside(dir, time.Now())
		if merr != nil {
			return &SettingError{Setting: "data-dir", Err: fmt.Errorf("%v; data-reset could not move it aside: %w", err, merr)}
		}
		g.log.Warn().Str("data_dir", dir).Str("moved_to", moved).AnErr("reason", err).
			Msg("data dir did not open; moved aside (data-reset), starting empty")
		db, stats, err = store.Open(opts, nsBroker, nsPending)
	case err == nil && g.opts.DataReset:
		g.log.Info().Str("data_dir", dir).Msg("data-reset: the data dir opens, so it is kept")
	}
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNewerFormat) {
			err = fmt.Errorf("%w; --data-reset moves it aside and starts empty", err)
		}
		return &SettingError{Setting: "data-dir", Err: err}
	}
	g.store = db
	g.storeErrLog = g.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	g.log.Info().Str("data_dir", dir).
		Int("broker_records", stats.Keys[nsBroker]).
		Int("pending_records", stats.Keys[nsPending]).
		Int64("bytes", stats.Bytes).
		Dur("took", stats.Took).
		Msg("data dir opened")
	return nil
}

// closeStoreLocked syncs and closes the data dir; the broker and the
// bridge, which write to it, are stopped first.
func (g *Gateway) closeStoreLocked() {
	if g.store == nil {
		return
	}
	if err := g.store.Close(); err != nil {
		g.log.Error().Err(err).Msg("data dir: close failed")
	}
}

// brokerStorage is the broker's namespace, or nil (not a nil pointer in
// an interface) without a data dir.
func (g *Gateway) brokerStorage() broker.Storage {
	if g.store == nil {
		return nil
	}
	return g.store.Namespace(nsBroker)
}

// pendingStore is where the registry keeps pending commands, or nil
// without a data dir.
func (g *Gateway) pendingStore() devices.Store {
	if g.store == nil {
		return nil
	}
	return g.store.Namespace(nsPending)
}

// onStoreError hears a pending-command record the registry could not
// write or read. Rate-limited: a failing disk fails every write.
func (g *Gateway) onStoreError(id string, err error) {
	g.storeErrLog.Error().Err(err).Str("device", id).Msg("pending commands: data dir failed")
}

// restoreRetained turns every stored "online" into "offline" as the
// broker loads the data dir, before anyone can read it: lamps'
// availability and lampgw/status. The registry starts empty and lampgw
// has not announced itself yet, so none of them is true; a lamp that
// connects, and lampgw once started, say "online" again. After a clean
// stop there is nothing to rewrite (Shutdown publishes the offlines);
// after a crash or kill -9 this is what keeps a stale "online".
func (g *Gateway) restoreRetained(topic string, payload []byte) []byte {
	if string(payload) != topics.Online {
		return payload
	}
	if topic == topics.GatewayStatus {
		return []byte(topics.Offline)
	}
	if t, err := topics.Parse(g.opts.TopicPrefix, topic); err == nil && t.Kind == topics.KindAvailability {
		return []byte(topics.Offline)
	}
	return payload
}
