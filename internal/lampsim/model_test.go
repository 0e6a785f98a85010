package lampsim

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// at is 21 June 2026 at hh:mm:ss UTC, plus days.
func at(days, hh, mm, ss int) time.Time {
	return time.Date(2026, 6, 21+days, hh, mm, ss, 0, time.UTC)
}

// exact is a lamp without noise in a room that gets all the daylight, so
// every number in these tests can be worked out by hand:
// ambient = 8 + 992·max(0, -cos(2π·p)).
func exact(cfg modelConfig, now time.Time) *model {
	if cfg.BrightnessMax == 0 {
		cfg.BrightnessMax = 1023
	}
	if cfg.Day == 0 {
		cfg.Day = 24 * time.Hour
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Hour
	}
	if cfg.Room == 0 {
		cfg.Room = 1
	}
	cfg.Deadband = deadband
	return newModel(cfg, rand.New(rand.NewPCG(1, 1)), now)
}

func TestAmbientFollowsTheDay(t *testing.T) {
	tests := []struct {
		name string
		day  time.Duration
		room float64
		t    time.Time
		want int
	}{
		{"midnight is dark", 0, 1, at(0, 0, 0, 0), 8},
		{"sunrise at six", 0, 1, at(0, 6, 0, 0), 8},
		{"nine: cos 45 degrees", 0, 1, at(0, 9, 0, 0), 709},
		{"noon is the peak", 0, 1, at(0, 12, 0, 0), 1000},
		{"three pm mirrors nine am", 0, 1, at(0, 15, 0, 0), 709},
		{"sunset at six", 0, 1, at(0, 18, 0, 0), 8},
		{"a darker room", 0, 0.5, at(0, 12, 0, 0), 504},
		{"one-hour day: half past is noon", time.Hour, 1, at(0, 0, 30, 0), 1000},
		{"one-hour day: quarter past is sunrise", time.Hour, 1, at(0, 0, 15, 0), 8},
		{"one-hour day repeats", time.Hour, 1, at(0, 7, 30, 0), 1000},
		{"before the epoch", 0, 1, time.Date(1969, 7, 20, 12, 0, 0, 0, time.UTC), 1000},
		{"local noon in another zone", 0, 1, time.Date(2026, 6, 21, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)), 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := exact(modelConfig{Day: tt.day, Room: tt.room}, tt.t)
			if got := m.state().Ambient; got != tt.want {
				t.Fatalf("ambient: got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAutoFollowsAmbientInversely(t *testing.T) {
	tests := []struct {
		name          string
		ambient, bmax int
		want          int
	}{
		{"dark room, full lamp", 0, 1023, 1023},
		{"night floor", 8, 1023, 1015},
		{"half light", 512, 1023, 511},
		{"full daylight", 1000, 1023, 23},
		{"sensor at full scale, lamp off", 1023, 1023, 0},
		{"255 core, night", 8, 255, 253},
		{"255 core, day", 1000, 255, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := exact(modelConfig{BrightnessMax: tt.bmax}, at(0, 0, 0, 0))
			m.st.Ambient = tt.ambient
			m.follow()
			if got := m.state().Brightness; got != tt.want {
				t.Fatalf("brightness: got %d, want %d", got, tt.want)
			}
		})
	}

	// And through time: from noon to midnight the room darkens and the
	// lamp brightens, and the change is due for a report.
	m := exact(modelConfig{}, at(0, 12, 0, 0))
	m.report(at(0, 12, 0, 0))
	noon := m.state()
	if r := m.tick(at(1, 0, 0, 0)); r != reasonChange {
		t.Fatalf("tick at midnight: got %v, want change", r)
	}
	night := m.state()
	if night.Ambient >= noon.Ambient || night.Brightness <= noon.Brightness {
		t.Fatalf("noon %+v, midnight %+v: want darker and brighter", noon, night)
	}
}

func TestApply(t *testing.T) {
	// Every case starts at noon (ambient 1000, auto brightness 23) with
	// the state in start.
	tests := []struct {
		name  string
		start state
		cmd   command
		want  state
	}{
		{"manual lamp takes brightness",
			state{Brightness: 100, Mode: modeManual, Power: powerOn},
			command{brightness: 700, hasBrightness: true},
			state{Brightness: 700, Mode: modeManual, Power: powerOn}},
		{"brightness alone switches auto to manual",
			state{Brightness: 23, Mode: modeAuto, Power: powerOn},
			command{brightness: 700, hasBrightness: true},
			state{Brightness: 700, Mode: modeManual, Power: powerOn}},
		{"brightness and mode manual",
			state{Brightness: 23, Mode: modeAuto, Power: powerOn},
			command{brightness: 300, hasBrightness: true, mode: modeManual},
			state{Brightness: 300, Mode: modeManual, Power: powerOn}},
		{"mode auto wins over brightness",
			state{Brightness: 700, Mode: modeManual, Power: powerOn},
			command{brightness: 300, hasBrightness: true, mode: modeAuto},
			state{Brightness: 23, Mode: modeAuto, Power: powerOn}},
		{"back to auto follows ambient at once",
			state{Brightness: 700, Mode: modeManual, Power: powerOn},
			command{mode: modeAuto},
			state{Brightness: 23, Mode: modeAuto, Power: powerOn}},
		{"power off keeps the setting",
			state{Brightness: 700, Mode: modeManual, Power: powerOn},
			command{power: powerOff},
			state{Brightness: 700, Mode: modeManual, Power: powerOff}},
		{"brightness past the range is clipped",
			state{Brightness: 700, Mode: modeManual, Power: powerOn},
			command{brightness: 5000, hasBrightness: true},
			state{Brightness: 1023, Mode: modeManual, Power: powerOn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := exact(modelConfig{}, at(0, 12, 0, 0))
			tt.start.Ambient, tt.want.Ambient = 1000, 1000
			m.st = tt.start
			m.apply(tt.cmd)
			if got := m.state(); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestManualHoldsThroughTheNight(t *testing.T) {
	m := exact(modelConfig{}, at(0, 12, 0, 0))
	m.apply(command{brightness: 300, hasBrightness: true, mode: modeManual})
	m.report(at(0, 12, 0, 0))
	if r := m.tick(at(1, 0, 0, 0)); r != reasonChange {
		t.Fatalf("tick at midnight: got %v, want change (ambient moved)", r)
	}
	want := state{Brightness: 300, Ambient: 8, Mode: modeManual, Power: powerOn}
	if got := m.state(); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestReportOnChangeAndHeartbeat(t *testing.T) {
	m := exact(modelConfig{Heartbeat: 10 * time.Minute}, at(0, 12, 0, 0))
	steps := []struct {
		t    time.Time
		want reason
		why  string
	}{
		{at(0, 12, 0, 0), reasonChange, "nothing reported yet"},
		{at(0, 12, 0, 0), reasonNone, "same time, same state"},
		{at(0, 12, 9, 59), reasonNone, "ambient 999 is within the deadband of 1000"},
		{at(0, 12, 10, 0), reasonHeartbeat, "ten minutes of silence"},
		{at(0, 12, 19, 59), reasonNone, "heartbeat counted from the last report"},
		{at(0, 12, 30, 0), reasonHeartbeat, "ambient 992 is still within the deadband"},
		{at(0, 13, 0, 0), reasonChange, "ambient 966 moved past the deadband"},
		{at(0, 13, 0, 1), reasonNone, "reported"},
		{at(1, 0, 0, 0), reasonChange, "night"},
	}
	for i, s := range steps {
		got := m.tick(s.t)
		if got != s.want {
			t.Fatalf("step %d at %s (%s): got %v, want %v; state %+v", i, s.t.Format("15:04:05"), s.why, got, s.want, m.state())
		}
		if got != reasonNone {
			m.report(s.t)
		}
	}
}

func TestNoise(t *testing.T) {
	opts := Options{Seed: 7}
	if err := opts.ensureDefaults(); err != nil {
		t.Fatal(err)
	}
	noon := at(0, 12, 0, 0)
	opts.Now = func() time.Time { return noon }
	readings := func(n int) []int {
		m := opts.newModel(n)
		var r []int
		for range 1000 {
			r = append(r, m.read(noon))
		}
		return r
	}
	a, b, other := readings(3), readings(3), readings(4)
	same, differs := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differs = differs || a[i] != other[i]
	}
	if !same {
		t.Fatal("the same seed and lamp gave different readings")
	}
	if !differs {
		t.Fatal("lamps 3 and 4 gave the same readings")
	}

	// Noise is small around the curve and never leaves the ADC's range.
	m := opts.newModel(3)
	curve := nightAmbient + m.cfg.Room*(dayAmbient-nightAmbient)
	sigma := noiseSigma / math.Sqrt(samples)
	for i, r := range a {
		if r < 0 || r > adcMax || math.Abs(float64(r)-curve) > 6*sigma {
			t.Fatalf("reading %d: got %d, want within 6 sigma of %.1f and 0..%d", i, r, curve, adcMax)
		}
	}

	// Noise alone, at a frozen time, almost never counts as a change: a
	// lamp reports on change, not on every tick.
	m.report(noon)
	changes := 0
	for range 1000 {
		if m.tick(noon) == reasonChange {
			changes++
			m.report(noon)
		}
	}
	if changes > 0 {
		t.Fatalf("noise made %d changes in 1000 ticks, want none", changes)
	}
}
