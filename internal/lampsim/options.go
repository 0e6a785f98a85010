package lampsim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Defaults for the zero values of Options.
const (
	DefaultIDPrefix     = "sim-"
	DefaultInterval     = time.Second
	DefaultHeartbeat    = 30 * time.Second
	DefaultDay          = 24 * time.Hour
	DefaultMaxLine      = 1024
	DefaultWriteTimeout = 10 * time.Second
	// DefaultBackoff and DefaultMaxBackoff bound a dial-in lamp's
	// reconnect delay: it starts at DefaultBackoff and doubles up to
	// DefaultMaxBackoff, so a restarted gateway sees its lamps back
	// within seconds without being hammered while it is down.
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 15 * time.Second
)

// queueLen bounds a connection's queue of reports. A lamp sends about one
// report per tick, so a peer that is this far behind is not reading.
const queueLen = 16

// Options configure the simulated lamps. The zero value of each field is
// documented, and the zero Options is one text lamp "sim-1".
type Options struct {
	// Count is how many lamps to simulate; 0 means 1.
	Count int
	// IDPrefix starts every lamp id, which is IDPrefix followed by the
	// lamp's number from 1; "" means DefaultIDPrefix. Every id must match
	// ^[A-Za-z0-9_-]{1,64}$.
	IDPrefix string
	// Dialect is the dialect of reports (and of nothing else: a lamp
	// understands commands in both); the zero value is text.
	Dialect bridge.Dialect
	// EOL ends every line a lamp sends: "\n", "\r\n" (Arduino println) or
	// "\r" (telnet-style firmware); "" means "\n".
	EOL string
	// BrightnessMax is the top of the brightness range; 0 means
	// devices.DefaultBrightnessMax (1023). Some ESP8266 cores use 255.
	BrightnessMax int
	// Interval is how often a lamp reads its sensor; 0 means
	// DefaultInterval.
	Interval time.Duration
	// Heartbeat is how long a lamp stays silent before it reports its
	// unchanged state; 0 means DefaultHeartbeat. It is measured on Now's
	// clock, so a frozen test clock sends none.
	Heartbeat time.Duration
	// Day is the length of one day/night cycle on Now's clock; 0 means
	// DefaultDay. A shorter day shows the whole curve in minutes.
	Day time.Duration
	// Seed seeds every lamp's noise; lamp i draws from its own stream
	// seeded with (Seed, i), so runs with the same Seed repeat. Every
	// value, 0 included, is a valid seed.
	Seed uint64
	// Now is the clock of the day/night curve and heartbeats; nil means
	// time.Now. Tests pass a fake clock to move the sun. It is called from
	// many goroutines.
	Now func() time.Time
	// MaxLine is the longest line a lamp reads, in bytes; 0 means
	// DefaultMaxLine. A longer one drops the connection (ErrLineTooLong).
	MaxLine int
	// WriteTimeout bounds each write to a peer; 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Backoff is a dial-in lamp's first reconnect delay, doubled after
	// each failure up to MaxBackoff and jittered; 0 means DefaultBackoff
	// and DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Logger receives lifecycle events at info, state changes at info,
	// heartbeats and frames at debug.
	Logger zerolog.Logger
}

// ensureDefaults replaces zero values with their defaults and checks the
// result; an error wraps ErrInvalidOptions.
func (o *Options) ensureDefaults() error {
	orDefault(&o.Count, 1)
	orDefault(&o.IDPrefix, DefaultIDPrefix)
	orDefault(&o.EOL, "\n")
	orDefault(&o.BrightnessMax, devices.DefaultBrightnessMax)
	orDefault(&o.Interval, DefaultInterval)
	orDefault(&o.Heartbeat, DefaultHeartbeat)
	orDefault(&o.Day, DefaultDay)
	orDefault(&o.MaxLine, DefaultMaxLine)
	orDefault(&o.WriteTimeout, DefaultWriteTimeout)
	orDefault(&o.Backoff, DefaultBackoff)
	orDefault(&o.MaxBackoff, DefaultMaxBackoff)
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.Count < 0:
		return invalid("Count", o.Count, "must not be negative")
	case o.EOL != "\n" && o.EOL != "\r\n" && o.EOL != "\r":
		return invalid("EOL", o.EOL, `must be "\n", "\r\n" or "\r"`)
	case o.Dialect != bridge.DialectText && o.Dialect != bridge.DialectJSON:
		return invalid("Dialect", o.Dialect, "unknown dialect")
	case o.BrightnessMax < 0:
		return invalid("BrightnessMax", o.BrightnessMax, "must not be negative")
	case o.MaxLine < 0:
		return invalid("MaxLine", o.MaxLine, "must not be negative")
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"Interval", o.Interval}, {"Heartbeat", o.Heartbeat}, {"Day", o.Day},
		{"WriteTimeout", o.WriteTimeout}, {"Backoff", o.Backoff}, {"MaxBackoff", o.MaxBackoff},
	} {
		if d.d < 0 {
			return invalid(d.name, d.d, "must not be negative")
		}
	}
	// The ids are the prefix and a decimal number; the longest is the last.
	if last := o.id(o.Count); !topics.ValidID(last) {
		return invalid("IDPrefix", o.IDPrefix, fmt.Sprintf("makes the invalid id %q", last))
	}
	return nil
}

// orDefault sets *p to def if it holds its type's zero value.
func orDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

func invalid(field string, value any, why string) error {
	return fmt.Errorf("%w: %s %q: %s", ErrInvalidOptions, field, fmt.Sprint(value), why)
}

// id is the id of lamp n, counting from 1.
func (o *Options) id(n int) string { return o.IDPrefix + strconv.Itoa(n) }

// newModel is lamp n's model, its room and noise drawn from its own
// stream so that lamps differ from each other but not between runs.
func (o *Options) newModel(n int) *model {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(n)))
	return newModel(modelConfig{
		BrightnessMax: o.BrightnessMax,
		Day:           o.Day,
		Heartbeat:     o.Heartbeat,
		// Rooms get between half and all of the daylight, so that the
		// lamps on a dashboard do not move in lockstep.
		Room:     0.5 + 0.5*rng.Float64(),
		Noise:    noiseSigma,
		Deadband: deadband,
	}, rng, o.Now())
}
