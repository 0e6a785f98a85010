package bridge

import (
	"net"
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
)

// The hot path of a reporting fleet, one step at a time, on the real
// codec, registry and embedded broker (no listener: the inline bus is the
// bridge's way in).
//
//	go test -run='^$' -bench='Frame|Report' -benchmem ./bridge

// textReport is the frame most lamps send most often: known keys only.
var textReport = []byte("brightness=512 ambient=830 mode=auto power=on")

// BenchmarkDecodeTextFrame decodes a text report the way a session does,
// into a reused Frame.
func BenchmarkDecodeTextFrame(b *testing.B) {
	var f Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(textReport)))
	for b.Loop() {
		if err := f.decode(textReport, devices.Schema{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONFrame is BenchmarkDecodeTextFrame for the JSON
// dialect.
func BenchmarkDecodeJSONFrame(b *testing.B) {
	line := []byte(`{"brightness":512,"ambient":830,"mode":"auto","power":"on"}`)
	var f Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := f.decode(line, devices.Schema{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeTextAllocs holds the hot path to its promise: a text report
// of known keys, decoded into a reused Frame, allocates nothing. The
// session pools its Frames, so this is the cost of every such frame
// before anything is published.
func TestDecodeTextAllocs(t *testing.T) {
	lines := []string{
		"brightness=512 ambient=830 mode=auto power=on",
		"brightness:1023,ambient:0;mode:MANUAL\tpower:Off",
		"  brightness=7  ",
	}
	for _, line := range lines {
		var f Frame
		// Warm: the first decode grows f.Pairs.
		if err := f.decode([]byte(line), devices.Schema{}); err != nil || len(f.Refused) > 0 {
			t.Fatalf("%q: %v, refused %v", line, err, f.Refused)
		}
		b := []byte(line)
		if got := testing.AllocsPerRun(100, func() { f.decode(b, devices.Schema{}) }); got != 0 {
			t.Errorf("%q: got %v allocations per decode, want 0", line, got)
		}
	}
}

// benchSession is an identified session on a real server, registry and
// embedded broker, for the steps after decoding.
func benchSession(tb testing.TB) *session {
	tb.Helper()
	brk, err := broker.New(broker.Options{Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { brk.Close() })
	srv, err := NewServer(Options{Bus: brk.Bus(), Logger: zerolog.Nop(), FrameRate: -1})
	if err != nil {
		tb.Fatal(err)
	}
	a, b := net.Pipe()
	tb.Cleanup(func() { a.Close(); b.Close() })
	c := newSession(srv, a)
	if _, err := srv.opts.Registry.Attach("bench", c, nil); err != nil {
		tb.Fatal(err)
	}
	c.id = "bench"
	return c
}

// BenchmarkReportPublishes translates a decoded report to its publishes
// (lamp/<id>/<key> for each key, then lamp/<id>/state) through the
// embedded broker.
func BenchmarkReportPublishes(b *testing.B) {
	c := benchSession(b)
	state := []byte(`{"ambient":830,"brightness":512,"mode":"auto","power":"on"}`)
	f, err := DecodeFrame(textReport, devices.Schema{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.publishReport(f.Pairs, state)
	}
}

// BenchmarkHandleReport is a report's whole way through the bridge:
// decode, registry, publishes of the one value that changed and of the
// state.
func BenchmarkHandleReport(b *testing.B) {
	c := benchSession(b)
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = []byte("brightness=" + strconv.Itoa(i) + " ambient=830 mode=auto")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := c.handle(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestUnchangedReportAllocs: a report that changes nothing publishes
// nothing, and from the socket's bytes to the registry's verdict
// allocates nothing either, so a fleet repeating its values costs no
// garbage. Under -race sync.Pool drops a quarter of what it is given on
// purpose, so the count is checked without it.
func TestUnchangedReportAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	c := benchSession(t)
	line := []byte("brightness=512 ambient=830 mode=auto")
	if err := c.handle(line); err != nil {
		t.Fatal(err)
	}
	if got := testing.AllocsPerRun(100, func() { c.handle(line) }); got != 0 {
		t.Errorf("got %v allocations per unchanged report, want 0", got)
	}
}
