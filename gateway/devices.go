package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
)

// watchDebounce lets an editor finish writing before the file is read:
// one save is often a truncate and several writes, or a rename.
const watchDebounce = 200 * time.Millisecond

// readDevices reads and parses the devices file, returning its raw bytes
// too so that a reload can tell whether anything changed.
func (g *Gateway) readDevices() (*devices.File, []byte, error) {
	data, err := readLimited(g.opts.DevicesFile, devices.MaxFileSize)
	if err != nil {
		return nil, nil, &devices.FileError{File: g.opts.DevicesFile, Err: err}
	}
	f, err := devices.ParseFile(g.opts.DevicesFile, data)
	if err == nil && g.opts.BrokerURL != "" {
		for _, c := range f.Devices {
			if c.Dial != "" {
				// Every instance would dial it, each taking it from the
				// others in turn.
				return nil, nil, &devices.FileError{File: g.opts.DevicesFile,
					Err: fmt.Errorf("device %q: dial is for a single gateway; with --broker-url let the lamp connect through the load balancer instead", c.ID)}
			}
		}
	}
	return f, data, err
}

// Reload reads every file the gateway was configured with again, as on
// SIGHUP, and applies each that loads. The devices file: added devices
// start, removed ones are disconnected and their retained topics cleared,
// changed ones reconnect, and the rest keep their connections. The TLS
// certificate, key and client CA: new handshakes use them, open
// connections are untouched. The users file: clients logged in as a
// user that is gone or whose password, role or lamps narrowed are
// disconnected, the others stay. A file that does not load is refused
// with one log line, what was in force stays, and its error is among
// those returned.
func (g *Gateway) Reload() error {
	var errs []error
	if g.opts.DevicesFile != "" {
		errs = append(errs, g.reload(true))
	}
	if g.opts.UsersFile != "" {
		errs = append(errs, g.reloadUsers())
	}
	if g.certs != nil {
		errs = append(errs, g.reloadCerts())
	}
	return errors.Join(errs...)
}

// reload applies the devices file. Unless force is set, a file with the
// same bytes as the one in force (or the one last refused) is left be, so
// that events for other files in its directory cost one read.
func (g *Gateway) reload(force bool) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	f, data, err := g.readDevices()
	if !force && data != nil && bytes.Equal(data, g.devicesSeen) {
		return nil
	}
	g.devicesSeen = data
	if err != nil {
		g.log.Error().Str("reason", err.Error()).Msg("devices file refused; the devices in force stay")
		return err
	}
	g.mu.Lock()
	b, disc := g.bridge, g.disc
	g.mu.Unlock()
	if b == nil {
		return bridge.ErrServerClosed
	}
	// Before SetDevices, so that the lamps it declares are announced to
	// Home Assistant with their names.
	g.devs.Store(f)
	ch := b.SetDevices(f)
	if disc != nil {
		disc.DevicesChanged(ch.Removed)
	}
	g.log.Info().Str("file", g.opts.DevicesFile).Int("devices", len(f.Devices)).
		Strs("added", ch.Added).Strs("removed", ch.Removed).Strs("changed", ch.Changed).
		Msg("devices file loaded")
	return nil
}

// watchDevices reloads the devices file when it changes, until ctx ends.
// It watches the directory, not the file: editors save by renaming a new
// file over the old one, and Kubernetes swaps a symlink, and either would
// leave a watch on the file itself watching nothing.
func (g *Gateway) watchDevices(ctx context.Context, w *fsnotify.Watcher) {
	defer w.Close()
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			settle = time.After(watchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			g.log.Warn().Err(err).Msg("devices file watch")
		case <-settle:
			settle = nil
			g.reload(false)
		}
	}
}

// startWatch starts watchDevices, or logs why it can't; SIGHUP (Reload)
// still works then.
func (g *Gateway) startWatch(ctx context.Context, log zerolog.Logger) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(g.opts.DevicesFile))
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot watch the devices file; reload it with SIGHUP")
		return
	}
	g.serving.Add(1)
	go func() {
		defer g.serving.Done()
		g.watchDevices(ctx, w)
	}()
}

// readLimited reads path, but no more than limit+1 bytes, so that a huge
// file is refused by the parser's size check instead of filling memory.
func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, limit+1))
}
