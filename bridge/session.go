package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// session is one lamp connection. The reader (run) owns id, bad and the
// framer; the writer goroutine owns all writes to conn. Other goroutines
// reach the lamp only through Deliver, which never blocks.
//
// An idle lamp costs what its session holds while it waits, times the
// fleet, so the session holds little: the writer goroutine runs only
// while there is something to write, the framer's buffer is small until a
// long frame comes, the logger's fields are added per event, and no
// context is made for it.
type session struct {
	srv  *Server
	conn net.Conn

	id      string
	bad     int
	dialect atomic.Uint32
	// preset is set for a lamp known without HELLO (matched or dialed).
	preset bool
	// tokenHash is the SHA-256 of the token this connection identified
	// with (zero: none); a take-over must present the same.
	tokenHash [sha256.Size]byte
	// limiter paces the reader (Options.FrameRate); nil means no limit.
	limiter *rate.Limiter

	// wq is the write queue: whole frames for the writer, at most
	// Options.WriteQueue. A frame with last set asks the writer to close
	// the connection once everything before it is written. A writer
	// goroutine runs only while wq has frames (writing), so there is at
	// most one; once run has stopped writes (wstopped) none starts, and
	// what is left goes back unwritten.
	wmu      sync.Mutex
	wq       []outFrame
	writing  bool
	wstopped bool
	wexited  chan struct{} // closed when the running writer returns

	// State interval (statepace.go): when lamp/<id>/state was last
	// published, and the state held back until the interval ends.
	stateMu   sync.Mutex
	stateAt   time.Time
	stateNext *pendingState

	closing   error // why the reader asked the writer to close; set before the last frame
	done      chan struct{}
	closeOnce sync.Once
	reason    error // set once, before done is closed
}

func newSession(s *Server, conn net.Conn) *session {
	c := &session{
		srv:  s,
		conn: conn,
		done: make(chan struct{}),
	}
	if s.opts.FrameRate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(s.opts.FrameRate), s.opts.FrameBurst)
	}
	return c
}

// event adds the connection's identity (remote, and device once known)
// to ev, a disabled event (nil) costing nothing. A child logger per
// connection would hold 500 bytes (zerolog's With) for every idle lamp.
func (c *session) event(ev *zerolog.Event) *zerolog.Event {
	if ev == nil {
		return nil
	}
	ev = ev.Str("remote", c.conn.RemoteAddr().String())
	if c.id != "" {
		ev = ev.Str("device", c.id)
	}
	return ev
}

// fail closes the connection for reason; the first reason wins.
func (c *session) fail(reason error) {
	c.closeOnce.Do(func() {
		c.reason = reason
		close(c.done)
		c.conn.Close()
	})
}

func (c *session) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// outFrame is one write for the writer goroutine.
type outFrame struct {
	b []byte
	// done, if set, hears whether b reached the socket (see Holder).
	done func(ok bool)
	// last asks the writer to close the connection after what came before.
	last bool
}

// Deliver implements devices.Holder. It encodes in the lamp's current
// dialect and queues without blocking; a lamp whose queue is full is too
// slow and is dropped rather than waited for.
func (c *session) Deliver(pairs []devices.Pair, done func(ok bool)) bool {
	frame := AppendCommand(nil, Dialect(c.dialect.Load()), pairs)
	if c.ended() {
		return false
	}
	if c.queue(outFrame{b: frame, done: done}) {
		return true
	}
	c.srv.stats.slowLamps.Add(1)
	c.fail(ErrSlowLamp)
	return false
}

// queue appends f to the write queue, starting a writer if none runs. It
// returns false when the queue is full.
func (c *session) queue(f outFrame) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.wq) >= c.srv.opts.WriteQueue {
		return false
	}
	c.wq = append(c.wq, f)
	if !c.writing && !c.wstopped {
		c.writing = true
		c.wexited = make(chan struct{})
		go c.writer(c.wexited)
	}
	return true
}

// nextWrite takes the writer's next frame. When the queue is empty or the
// connection ended it reports false and the writer must return: writing
// is cleared under the same lock that saw nothing to do, so a frame
// queued just after starts a new writer.
func (c *session) nextWrite() (outFrame, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.wq) == 0 || c.ended() {
		c.writing = false
		return outFrame{}, false
	}
	f := c.wq[0]
	c.wq[0] = outFrame{}
	c.wq = c.wq[1:]
	if len(c.wq) == 0 {
		c.wq = nil // an idle lamp holds no array
	}
	return f, true
}

// stopWrites lets no writer start again and waits for the running one.
func (c *session) stopWrites() {
	c.wmu.Lock()
	c.wstopped = true
	exited, running := c.wexited, c.writing
	c.wmu.Unlock()
	if running {
		<-exited
	}
}

// unwritten reports every command frame still queued when the
// connection ended as not written, so the registry keeps its commands.
// Only run calls it, after stopWrites.
func (c *session) unwritten() {
	c.wmu.Lock()
	q := c.wq
	c.wq = nil
	c.wmu.Unlock()
	for _, f := range q {
		if f.done != nil {
			f.done(false)
		}
	}
}

// Kick implements devices.Holder.
func (c *session) Kick() { c.fail(ErrTakenOver) }

// send queues an ERR line. When the queue is full the line is dropped: a
// lamp that doesn't read its errors loses nothing else by it.
func (c *session) send(line []byte) { c.queue(outFrame{b: line}) }

// writer writes the queued frames, one goroutine at a time (see wq), and
// returns when the queue is empty or the connection ends.
func (c *session) writer(exited chan struct{}) {
	defer close(exited)
	for {
		f, ok := c.nextWrite()
		if !ok {
			return
		}
		if f.last {
			c.fail(c.closing)
			c.endWriter()
			return
		}
		c.conn.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
		if _, err := c.conn.Write(f.b); err != nil {
			c.fail(fmt.Errorf("%w: %w", errWrite, err))
			c.endWriter()
			if f.done != nil {
				f.done(false)
			}
			return
		}
		c.mirror("tx", f.b)
		if f.done != nil {
			c.srv.stats.commandFrames.Add(1)
			f.done(true)
		} else {
			c.srv.stats.errorLines.Add(1)
		}
	}
}

// endWriter clears writing for a writer that returns with frames left
// (the connection has ended: a writer started for them returns at once).
func (c *session) endWriter() {
	c.wmu.Lock()
	c.writing = false
	c.wmu.Unlock()
}

func (c *session) run(ctx context.Context, preset *devices.Config) {
	// Shutdown fails every session of the server's own, so only another
	// context (ServeConn's caller's, a dialer's) needs watching; one
	// watch per lamp on the server's context would cost every idle lamp
	// an entry in it.
	if ctx != c.srv.ctx {
		stop := context.AfterFunc(ctx, func() { c.fail(ErrServerClosed) })
		defer stop()
	}

	err := c.handshake(ctx)
	if err == nil && preset != nil {
		// A lamp that never speaks first is written to in the dialect
		// its file entry names until it speaks.
		d := DialectText
		if preset.Dialect == devices.DialectJSON {
			d = DialectJSON
		}
		c.dialect.Store(uint32(d))
		if err = c.identify(Frame{ID: preset.ID, Dialect: d}, how(preset), nil); err != nil {
			c.closeAfter(AppendError(nil, err), err)
		}
	}
	if err == nil {
		err = c.readLoop()
	}
	if c.closing == nil {
		c.fail(err)
	} // else the writer closes once the last ERR line is out, within WriteTimeout
	c.stopWrites()
	if c.id != "" {
		c.endState(errors.Is(c.reason, ErrTakenOver) || errors.Is(c.reason, ErrMovedAway))
		s := c.srv
		s.opts.Registry.Detach(c.id, c, func() { s.announceOffline(c.id) })
	}
	// After Detach: the registry hands frames to its holder under the
	// device's lock, so none can arrive after this.
	c.unwritten()
	c.logEnd()
}

// endReason classifies why the connection ended, for Stats.
func (c *session) endReason() string {
	r := c.reason
	var ne net.Error
	switch {
	case errors.Is(r, ErrTakenOver), errors.Is(r, ErrMovedAway):
		return EndTakenOver
	case errors.Is(r, ErrServerClosed):
		return EndShutdown
	case errors.Is(r, ErrDeviceRemoved), errors.Is(r, ErrDeviceChanged):
		return EndDevices
	case errors.Is(r, ErrSlowLamp):
		return EndSlow
	case errors.Is(r, ErrTooManyBadFrames):
		return EndBadFrames
	case errors.Is(r, ErrNotAuthorized), errors.Is(r, ErrUnknownDevice), errors.Is(r, ErrTooManyFailures),
		errors.Is(r, devices.ErrTooManyDevices):
		return EndRefused
	case errors.As(r, &ne) && ne.Timeout() && c.id == "", errors.Is(r, errTLSHandshake):
		return EndHandshake
	case errors.As(r, &ne) && ne.Timeout():
		return EndIdle
	case errors.Is(r, errWrite):
		return EndWriteFailed
	case r == nil, errors.Is(r, io.EOF), errors.Is(r, net.ErrClosed), errors.As(r, &ne):
		return EndHangUp
	}
	return EndOther
}

func (c *session) logEnd() {
	c.srv.stats.ended(c.endReason())
	reason := c.reason
	level := zerolog.InfoLevel
	switch {
	case errors.Is(reason, io.EOF):
		reason = nil
	case errors.Is(reason, ErrTakenOver), errors.Is(reason, ErrMovedAway), errors.Is(reason, ErrServerClosed),
		errors.Is(reason, ErrDeviceRemoved), errors.Is(reason, ErrDeviceChanged):
	case errors.Is(reason, net.ErrClosed):
		reason = nil // closed by us for a reason already recorded
	default:
		level = zerolog.WarnLevel
	}
	if c.id == "" {
		level = zerolog.DebugLevel
	}
	c.event(c.srv.log.WithLevel(level)).AnErr("reason", reason).Msg("lamp disconnected")
}

func (c *session) readLoop() error {
	opts := &c.srv.opts
	if c.id == "" {
		c.conn.SetReadDeadline(time.Now().Add(opts.HandshakeTimeout))
	}
	fr := newFramer(c.conn, opts.MaxFrame)
	for {
		if c.id != "" && opts.IdleTimeout > 0 {
			c.conn.SetReadDeadline(time.Now().Add(opts.IdleTimeout))
		}
		line, err := fr.next()
		switch {
		case errors.Is(err, ErrFrameTooLong):
			if err := c.reject(fmt.Errorf("%w (max %d bytes)", ErrFrameTooLong, opts.MaxFrame)); err != nil {
				return err
			}
			continue
		case err != nil:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				if c.id == "" {
					c.srv.stats.handshakeTimeouts.Add(1)
				} else {
					c.srv.stats.idleTimeouts.Add(1)
				}
			}
			return err
		}
		if len(bytes.Trim(line, asciiSpace)) == 0 {
			continue
		}
		if !c.limitFrames() {
			return c.reason
		}
		if err := c.handle(line); err != nil {
			return err
		}
		select {
		case <-c.done:
			return c.reason
		default:
		}
	}
}

// handle processes one non-blank frame. A non-nil error ends the
// connection.
func (c *session) handle(line []byte) error {
	start := time.Now()
	s := c.srv
	schema := s.schema(c.id)
	f := framePool.Get().(*Frame)
	defer framePool.Put(f)
	err := f.decode(line, schema)
	// After the frame is handled: an identifying frame names the lamp
	// whose topic it is mirrored on.
	if s.opts.DebugMirror {
		defer func() { c.mirror("rx", redact(line, f.Token)) }()
	}
	if err == nil && c.id == "" && f.ID != "" && len(f.Pairs)+len(f.Refused) > 0 {
		// The identifying frame's values follow its lamp's schema; rare
		// enough (a JSON hello with values, for a lamp with its own
		// brightness_max) to decode twice.
		if own := s.schema(f.ID); own != schema {
			err = f.decode(line, own)
		}
	}
	switch {
	case err != nil:
		return c.reject(err)
	case c.id == "" && f.ID == "":
		return c.reject(ErrNotIdentified)
	case c.id == "":
		// Before Attach, which may deliver desired state at once: the
		// identifying frame is the first the lamp speaks, so it sets the
		// dialect its commands come back in.
		c.dialect.Store(uint32(f.Dialect))
		if err := c.hello(*f); err != nil {
			return c.closeAfter(AppendError(nil, err), err)
		}
	case f.Hello && f.ID != c.id:
		return c.reject(fmt.Errorf("%w as %s", ErrAlreadyIdentified, c.id))
	case f.ID != "" && f.ID != c.id:
		return c.reject(ErrIDMismatch)
	}
	c.dialect.Store(uint32(f.Dialect))
	refused := f.Refused
	accepted := len(f.Pairs)
	if len(f.Pairs) > 0 {
		over := s.opts.Registry.Report(c.id, c, f.Pairs, func(changed []devices.Pair, state []byte) {
			c.publishReport(changed, state)
			if s.opts.ObserveReport != nil {
				s.opts.ObserveReport(time.Since(start))
			}
		})
		for _, p := range over {
			refused = append(refused, &devices.ValueError{Key: p.Key, Reason: "too many keys"})
		}
		accepted -= len(over)
	}
	// An identification counts as a good frame even with nothing else in it.
	if accepted == 0 && f.ID == "" {
		if len(refused) == 0 {
			return c.reject(ErrNoValues)
		}
		return c.reject(joinRefused(refused))
	}
	c.bad = 0
	if len(refused) > 0 {
		c.srv.stats.framesPartial.Add(1)
		c.send(AppendError(nil, joinRefused(refused)))
	} else {
		c.srv.stats.framesOK.Add(1)
	}
	return nil
}

// framePool holds the Frames that handle decodes into: their Pairs
// arrays are reused, and an idle lamp holds none.
var framePool = sync.Pool{New: func() any { return new(Frame) }}

// publishReport publishes what a report changed: each changed key's
// plain value on lamp/<id>/<key>, then the lamp's whole state.
func (c *session) publishReport(changed []devices.Pair, state []byte) {
	s := c.srv
	for _, p := range changed {
		s.publish(topics.Value(s.opts.Prefix, c.id, p.Key), []byte(p.Value.Text), true)
	}
	c.publishState(state)
}

// handshake completes a TLS handshake, if conn is TLS, within
// HandshakeTimeout, before anything else: a lamp matched by its address
// must not be announced online by a connection that then fails TLS.
func (c *session) handshake(ctx context.Context) error {
	hs, ok := c.conn.(interface{ HandshakeContext(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.opts.HandshakeTimeout)
	defer cancel()
	if err := hs.HandshakeContext(ctx); err != nil {
		c.srv.stats.handshakeTimeouts.Add(1)
		return fmt.Errorf("%w: %w", errTLSHandshake, err)
	}
	return nil
}

// how says how a preset lamp was identified, for the log.
func how(preset *devices.Config) string {
	if preset.Dial != "" {
		return "dial"
	}
	return "match"
}

// hello identifies the connection by a HELLO or a JSON id, checking it
// (see admitHello) and counting failures against the remote address.
func (c *session) hello(f Frame) error {
	s := c.srv
	addr, hasAddr := remoteIP(c.conn)
	var failures *rate.Limiter
	if hasAddr {
		failures = s.failures(addr)
		// Tokens() without taking one: only failures spend them.
		if failures.Tokens() < 1 {
			s.stats.authFailures.Add(1)
			s.warn.Warn().Str("remote", c.conn.RemoteAddr().String()).Str("device", f.ID).Msg("lamp identification refused: too many failed attempts")
			return ErrTooManyFailures
		}
	}
	if f.Token != "" {
		c.tokenHash = devices.HashToken(f.Token)
	}
	err := c.identify(f, "hello", c.admitHello(f.ID, f.Token))
	if errors.Is(err, ErrNotAuthorized) || errors.Is(err, ErrUnknownDevice) {
		s.stats.authFailures.Add(1)
		if failures != nil {
			failures.Allow() // spend one
		}
		// The reason, never the token.
		s.warn.Warn().Str("remote", c.conn.RemoteAddr().String()).Str("device", f.ID).Str("reason", reason(err)).Msg("lamp identification refused")
	}
	return err
}

// identify attaches the connection to f.ID if admit allows (nil: always);
// by is how the lamp was identified (hello, match or dial), for the log.
func (c *session) identify(f Frame, by string, admit func(devices.Holder) error) error {
	s := c.srv
	id := f.ID
	if s.admit != nil && !c.waitAdmit() {
		return fmt.Errorf("%w: waiting to be admitted", ErrServerClosed)
	}
	tookOver, err := s.opts.Registry.AttachIf(id, c, admit, func() {
		s.publish(topics.Availability(s.opts.Prefix, id), []byte(topics.Online), true)
	})
	if err != nil {
		return err
	}
	c.id = id
	c.conn.SetReadDeadline(time.Time{})
	c.event(s.log.Info()).Bool("takeover", tookOver).Stringer("dialect", f.Dialect).Str("by", by).Msg("lamp online")
	if s.opts.Custody != nil {
		s.opts.Custody.Attached(id)
	}
	return nil
}

// reject answers a bad frame with "ERR <reason>" and counts it. After
// MaxBadFrames bad frames in a row it returns ErrTooManyBadFrames, having
// asked the writer to close the connection after the final ERR line.
func (c *session) reject(err error) error {
	c.bad++
	c.srv.stats.badFrames.Add(1)
	c.srv.warn.Warn().Str("remote", c.conn.RemoteAddr().String()).Str("device", c.id).Str("reason", err.Error()).Msg("lamp frame rejected")
	c.send(AppendError(nil, err))
	if c.bad < c.srv.opts.MaxBadFrames {
		return nil
	}
	return c.closeAfter(AppendError(nil, ErrTooManyBadFrames), ErrTooManyBadFrames)
}

// closeAfter queues a last line and then a close, so the lamp learns why
// it is dropped. If the queue has no room, the connection closes now.
func (c *session) closeAfter(line []byte, reason error) error {
	c.send(line)
	c.closing = reason
	if !c.queue(outFrame{last: true}) {
		c.fail(reason)
	}
	return reason
}
