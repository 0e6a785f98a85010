package lampsim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
)

// lamp is one simulated lamp: its model and the connections it reports
// to, both behind mu. Its ticker goroutine (run) and each connection's
// reader call into it; each connection's writer goroutine is the only one
// that writes to that connection.
type lamp struct {
	id     string
	opts   *Options
	schema devices.Schema
	log    zerolog.Logger

	mu    sync.Mutex
	m     *model
	conns map[*conn]struct{}
}

// newLamp is lamp n (from 1) of opts, which has its defaults.
func newLamp(opts *Options, n int) *lamp {
	id := opts.id(n)
	l := &lamp{
		id:     id,
		opts:   opts,
		schema: devices.Schema{BrightnessMax: opts.BrightnessMax},
		log:    opts.Logger.With().Str("device", id).Logger(),
		m:      opts.newModel(n),
		conns:  make(map[*conn]struct{}),
	}
	// The state at power-on is logged and counts as reported: every peer
	// gets it when it connects, so the first tick need not send it again.
	l.mu.Lock()
	l.reportLocked(opts.Now(), reasonBoot)
	l.mu.Unlock()
	return l
}

// run reads the sensor every Interval, reporting when the model says so,
// until ctx ends. The sensor keeps running while no peer is connected, as
// firmware does; a peer that connects gets the current state first.
func (l *lamp) run(ctx context.Context) {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		now := l.opts.Now()
		if r := l.m.tick(now); r != reasonNone {
			l.reportLocked(now, r)
		}
		l.mu.Unlock()
	}
}

// command applies c and reports the new state, changed or not: the
// report is how the gateway, and the app behind it, learn that the
// command arrived.
func (l *lamp) command(c command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m.apply(c)
	l.reportLocked(l.opts.Now(), reasonCommand)
}

// reportLocked sends the current state to every peer. A state that
// differs from the last report is logged at info, anything else at debug.
func (l *lamp) reportLocked(now time.Time, r reason) {
	prev, had := l.m.sent, l.m.hasSent
	st := l.m.report(now)
	ev := l.log.Debug()
	if !had || st != prev {
		ev = l.log.Info()
	}
	ev.Str("reason", r.String()).
		Int("brightness", st.Brightness).
		Int("ambient", st.Ambient).
		Str("mode", st.Mode).
		Str("power", st.Power).
		Int("peers", len(l.conns)).
		Msg("state")
	frame := l.encode(st)
	for c := range l.conns {
		c.send(frame)
	}
}

// encode spells st as one frame in the lamp's dialect and EOL. The
// gateway's command encoder writes exactly the frame a lamp reports, so
// it is reused rather than written again.
func (l *lamp) encode(st state) []byte {
	b := bridge.AppendCommand(nil, l.opts.Dialect, st.pairs())
	return append(b[:len(b)-1], l.opts.EOL...)
}

// attach adds c to the peers and sends it the current state, which the
// other peers already have.
func (l *lamp) attach(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[c] = struct{}{}
	c.send(l.encode(l.m.state()))
}

func (l *lamp) detach(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// serve speaks for the lamp on nc until the peer goes away, a read or
// write fails, or ctx ends, and closes nc. With hello it sends "HELLO
// <id>" before anything else, as dial-in firmware does. It returns why
// the connection ended: io.EOF when the peer closed it, ctx's error when
// ctx ended.
func (l *lamp) serve(ctx context.Context, nc net.Conn, hello bool) error {
	c := &conn{
		nc:   nc,
		out:  make(chan []byte, queueLen),
		done: make(chan struct{}),
	}
	log := l.log.With().Str("remote", nc.RemoteAddr().String()).Logger()
	// Rejected input can come as fast as a peer can type; a burst of
	// warnings is enough to show what is wrong.
	warn := log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})

	var writer sync.WaitGroup
	writer.Go(func() { c.write(l.opts.WriteTimeout) })
	if hello {
		c.send([]byte("HELLO " + l.id + l.opts.EOL))
	}
	l.attach(c)
	stop := context.AfterFunc(ctx, func() { c.close(ctx.Err()) })

	err := l.read(c, log, warn)
	stop()
	c.close(err)
	l.detach(c)
	writer.Wait()
	return c.err
}

// read handles the peer's lines until the connection fails. The scanner's
// buffer never grows past MaxLine+1 bytes (the line and its terminator),
// so a peer cannot make the lamp allocate.
func (l *lamp) read(c *conn, log, warn zerolog.Logger) error {
	sc := bufio.NewScanner(c.nc)
	sc.Buffer(make([]byte, 0, min(l.opts.MaxLine+1, 4096)), l.opts.MaxLine+1)
	sc.Split(scanLines)
	for sc.Scan() {
		l.handle(sc.Bytes(), log, warn)
	}
	switch err := sc.Err(); {
	case err == nil:
		return io.EOF
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("%w (max %d bytes)", ErrLineTooLong, l.opts.MaxLine)
	default:
		return fmt.Errorf("read: %w", err)
	}
}

// scanLines is a bufio.SplitFunc for the protocol's three terminators:
// "\n", "\r\n" and a bare "\r" each end a line ("\r\n" leaves an empty
// line, which handle skips). A partial line at EOF is dropped: the peer
// never finished it.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil
}

// handle acts on one line from the peer: a command is applied; "ERR ..."
// from the gateway, a HELLO and anything unreadable are logged and
// otherwise ignored, as firmware ignores what it does not understand.
func (l *lamp) handle(line []byte, log, warn zerolog.Logger) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	log.Debug().Bytes("frame", line).Msg("received")
	if bytes.HasPrefix(line, []byte("ERR ")) {
		warn.Warn().Bytes("error", line[4:]).Msg("peer refused a frame")
		return
	}
	f, err := bridge.DecodeFrame(line, l.schema)
	if err != nil {
		warn.Warn().Err(err).Msg("unreadable command ignored")
		return
	}
	if f.Hello {
		return
	}
	for _, err := range f.Refused {
		warn.Warn().Err(err).Msg("command key ignored")
	}
	c, ignored := commandFrom(f.Pairs)
	if len(ignored) > 0 {
		log.Debug().Strs("keys", ignored).Msg("unknown command keys ignored")
	}
	if !c.empty() {
		l.command(c)
	}
}

// conn is one peer of a lamp. Frames reach the writer goroutine through a
// bounded queue, so a peer that does not read never blocks the lamp: when
// its queue is full it is dropped (ErrSlowPeer).
type conn struct {
	nc   net.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once
	err  error // why the connection ended; set before done is closed
}

// send queues frame without blocking. Frames are shared between peers
// and never modified.
func (c *conn) send(frame []byte) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.out <- frame:
	default:
		c.close(ErrSlowPeer)
	}
}

// close ends the connection for err; the first reason wins. Closing nc
// unblocks both the reader and the writer.
func (c *conn) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
	})
}

// write sends queued frames in order until the connection ends.
func (c *conn) write(timeout time.Duration) {
	for {
		select {
		case <-c.done:
			return
		case frame := <-c.out:
			c.nc.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := c.nc.Write(frame); err != nil {
				c.close(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}
