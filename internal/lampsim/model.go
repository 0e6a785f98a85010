package lampsim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/lampgw/lampgw/devices"
)

// The light sensor is an LDR on the ESP8266's ADC, which reads 0..1023.
const (
	adcMax = 1023
	// nightAmbient is the reading in the dark: the divider's dark current
	// and stray light, never quite 0.
	nightAmbient = 8
	// dayAmbient is the reading at noon in the brightest room; rooms with
	// less daylight reach a fraction of it (modelConfig.Room).
	dayAmbient = 1000
	// noiseSigma is the noise of one ADC read in counts (one standard
	// deviation).
	noiseSigma = 2.0
	// samples is how many ADC reads firmware averages per tick, which
	// brings the noise of a reading down to noiseSigma/2.
	samples = 4
	// deadband is how far a reading must move from the last accepted one
	// to count as a change, so that noise alone does not make a lamp
	// report every tick. Without the averaging a deadband is not enough:
	// an accepted reading that was itself 2.5 sigma out is then 5 counts
	// from the mean, and the lamp flips between two outliers every few
	// hundred ticks. With it, that takes a 7-sigma reading.
	deadband = 10
)

// Values of the mode and power keys, as the gateway spells them.
const (
	modeAuto   = "auto"
	modeManual = "manual"
	powerOn    = "on"
	powerOff   = "off"
)

// state is everything a lamp reports.
type state struct {
	Brightness int
	Ambient    int
	Mode       string // modeAuto or modeManual
	Power      string // powerOn or powerOff
}

// pairs spells s as the frame's keys, in the order a lamp sends them.
func (s state) pairs() []devices.Pair {
	b, a := strconv.Itoa(s.Brightness), strconv.Itoa(s.Ambient)
	return []devices.Pair{
		{Key: devices.KeyBrightness, Value: devices.Value{Text: b, JSON: b}},
		{Key: devices.KeyAmbient, Value: devices.Value{Text: a, JSON: a}},
		{Key: devices.KeyMode, Value: devices.Value{Text: s.Mode, JSON: strconv.Quote(s.Mode)}},
		{Key: devices.KeyPower, Value: devices.Value{Text: s.Power, JSON: strconv.Quote(s.Power)}},
	}
}

// modelConfig is one lamp's fixed properties. Unlike Options, every field
// is used as it is: tests set Noise 0 and Room 1 to get exact numbers.
type modelConfig struct {
	BrightnessMax int
	// Day is the length of one day/night cycle.
	Day time.Duration
	// Heartbeat is how long the lamp stays silent before it reports its
	// unchanged state anyway.
	Heartbeat time.Duration
	// Room is the share, 0..1, of full daylight that reaches the sensor.
	Room float64
	// Noise is the standard deviation of one ADC read in counts.
	Noise float64
	// Deadband is how far a reading must move to count as a change.
	Deadband int
}

// reason says why a lamp sends a report; it is logged.
type reason uint8

const (
	reasonNone      reason = iota
	reasonChange           // the sensor moved the state
	reasonHeartbeat        // nothing changed for a Heartbeat
	reasonCommand          // a command was applied
	reasonBoot             // the lamp was switched on
)

var reasonNames = [...]string{"none", "change", "heartbeat", "command", "boot"}

func (r reason) String() string { return reasonNames[r] }

// model is one lamp's firmware logic. It is pure: time comes in as an
// argument and randomness from its own stream, so the same config, seed
// and times give the same reports. It is not safe for concurrent use.
type model struct {
	cfg modelConfig
	rng *rand.Rand
	st  state
	// sent and sentAt are the last report; hasSent is false until one.
	sent    state
	sentAt  time.Time
	hasSent bool
}

// newModel returns a lamp that was switched on at now: power on, mode
// auto, and the sensor read once.
func newModel(cfg modelConfig, rng *rand.Rand, now time.Time) *model {
	m := &model{cfg: cfg, rng: rng, st: state{Mode: modeAuto, Power: powerOn}}
	m.st.Ambient = m.read(now)
	m.follow()
	return m
}

// state returns the current state, reported or not.
func (m *model) state() state { return m.st }

// daylight is the share of full daylight at t, 0..1: max(0, -cos(2π·p))
// where p is the fraction of the day since midnight. That is 0 from 18:00
// to 06:00 and rises as a half sine to 1 at noon. With a 24 h day p is
// local wall-clock time; a shorter day just repeats from the Unix epoch
// (shifted by the zone), so a compressed day is still a pure function of t.
func daylight(t time.Time, day time.Duration) float64 {
	_, offset := t.Zone()
	ns := t.UnixNano() + int64(offset)*int64(time.Second)
	into := ns % int64(day)
	if into < 0 {
		into += int64(day)
	}
	p := float64(into) / float64(day)
	return max(0, -math.Cos(2*math.Pi*p))
}

// read is one sensor reading at t: the curve for this room plus noise,
// the mean of samples ADC reads, rounded and clipped to the ADC's range.
func (m *model) read(t time.Time) int {
	v := nightAmbient + m.cfg.Room*(dayAmbient-nightAmbient)*daylight(t, m.cfg.Day)
	if m.cfg.Noise > 0 {
		var sum float64
		for range samples {
			sum += m.rng.NormFloat64()
		}
		v += sum / samples * m.cfg.Noise
	}
	return clamp(int(math.Round(v)), 0, adcMax)
}

// follow sets brightness from ambient in auto mode: a linear inverse, so
// a dark room (ambient 0) gets full brightness and full-scale daylight
// gets none.
func (m *model) follow() {
	if m.st.Mode != modeAuto {
		return
	}
	b := float64(m.cfg.BrightnessMax) * float64(adcMax-m.st.Ambient) / adcMax
	m.st.Brightness = clamp(int(math.Round(b)), 0, m.cfg.BrightnessMax)
}

// tick reads the sensor at now and says whether a report is due: because
// the state differs from the last report, or as a heartbeat.
func (m *model) tick(now time.Time) reason {
	if r := m.read(now); abs(r-m.st.Ambient) >= m.cfg.Deadband {
		m.st.Ambient = r
		m.follow()
	}
	switch {
	case !m.hasSent || m.st != m.sent:
		return reasonChange
	case now.Sub(m.sentAt) >= m.cfg.Heartbeat:
		return reasonHeartbeat
	}
	return reasonNone
}

// report records that the current state was sent at now and returns it.
func (m *model) report(now time.Time) state {
	m.sent, m.sentAt, m.hasSent = m.st, now, true
	return m.st
}

// command is what a lamp understood of one command frame; a field left
// at its zero value (hasBrightness false, "" for the strings) was not in
// the frame.
type command struct {
	brightness    int
	hasBrightness bool
	mode          string
	power         string
}

func (c command) empty() bool { return !c.hasBrightness && c.mode == "" && c.power == "" }

// commandFrom picks the keys a lamp acts on from pairs, which
// devices.Schema has validated: brightness within 0..BrightnessMax, mode
// and power in lower case. Other keys are returned in ignored; firmware
// skips keys it does not know.
func commandFrom(pairs []devices.Pair) (c command, ignored []string) {
	for _, p := range pairs {
		switch p.Key {
		case devices.KeyBrightness:
			n, err := strconv.Atoi(p.Value.Text)
			if err != nil {
				ignored = append(ignored, p.Key)
				continue
			}
			c.brightness, c.hasBrightness = n, true
		case devices.KeyMode:
			c.mode = p.Value.Text
		case devices.KeyPower:
			c.power = p.Value.Text
		default:
			ignored = append(ignored, p.Key)
		}
	}
	return c, ignored
}

// apply carries out c. A brightness without a mode switches the lamp to
// manual, as turning the dimmer by hand does; otherwise a brightness
// command would be undone by auto mode at the next tick. A brightness
// together with mode auto is ignored, because auto owns brightness.
func (m *model) apply(c command) {
	if c.mode != "" {
		m.st.Mode = c.mode
	}
	if c.hasBrightness && c.mode != modeAuto {
		m.st.Mode = modeManual
		m.st.Brightness = clamp(c.brightness, 0, m.cfg.BrightnessMax)
	}
	if c.power != "" {
		m.st.Power = c.power
	}
	m.follow()
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
