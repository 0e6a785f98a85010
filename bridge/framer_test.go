package bridge

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// tooLong stands for ErrFrameTooLong in the framer tables.
const tooLong = "<too long>"

// readers deliver the same input in different pieces; the framer must
// give the same frames whatever the TCP segmentation.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{name: "all at once", wrap: func(r io.Reader) io.Reader { return r }},
	{name: "byte by byte", wrap: iotest.OneByteReader},
	{name: "half reads", wrap: iotest.HalfReader},
	{name: "data with EOF", wrap: iotest.DataErrReader},
	{name: "chunks of 7", wrap: func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 7} }},
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// readFrames runs the framer to the end of r and returns every frame
// (tooLong for ErrFrameTooLong) and the error that ended it. It checks on
// every call that the framer's buffer is within its bound.
func readFrames(t *testing.T, r io.Reader, max int) ([]string, error) {
	t.Helper()
	f := newFramer(r, max)
	limit := f.largeSize()
	var frames []string
	for i := 0; ; i++ {
		if i > 1e6 {
			t.Fatal("framer did not reach the end of its input")
		}
		line, err := f.next()
		if len(f.buf) > limit {
			t.Fatalf("buffer after %d frames: got %d bytes, want at most %d", len(frames), len(f.buf), limit)
		}
		switch {
		case errors.Is(err, ErrFrameTooLong):
			frames = append(frames, tooLong)
		case err != nil:
			return frames, err
		default:
			if len(line) > max {
				t.Fatalf("frame of %d bytes: got longer than max %d", len(line), max)
			}
			frames = append(frames, string(line))
		}
	}
}

func TestFramer(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		max  int
		in   string
		want []string
	}{
		{name: "newline", max: 1024, in: "a\nbb\n", want: []string{"a", "bb"}},
		{name: "crlf", max: 1024, in: "a\r\nbb\r\n", want: []string{"a", "", "bb", ""}},
		{name: "bare cr", max: 1024, in: "a\rbb\r", want: []string{"a", "bb"}},
		{name: "mixed", max: 1024, in: "a\nb\r\nc\rd\n\re\n", want: []string{"a", "b", "", "c", "d", "", "e"}},
		{name: "blank lines", max: 1024, in: "\n\n\r", want: []string{"", "", ""}},
		{name: "many per segment", max: 1024, in: "HELLO kitchen\nbrightness=1\n{\"mode\":\"auto\"}\n",
			want: []string{"HELLO kitchen", "brightness=1", `{"mode":"auto"}`}},
		{name: "partial frame at EOF dropped", max: 1024, in: "a\nunfinished", want: []string{"a"}},
		{name: "only a partial frame", max: 1024, in: "unfinished"},
		{name: "empty input", max: 1024, in: ""},
		{name: "exactly max", max: 10, in: "0123456789\nok\n", want: []string{"0123456789", "ok"}},
		{name: "exactly max with crlf", max: 10, in: "0123456789\r\nok\n", want: []string{"0123456789", "", "ok"}},
		{name: "max plus one", max: 10, in: "0123456789A\nok\n", want: []string{tooLong, "ok"}},
		// max 10 gives a 512-byte buffer: the long frame's terminator is
		// inside it when read all at once.
		{name: "too long terminator in buffer", max: 10, in: "a\n" + strings.Repeat("y", 100) + "\nok\n", want: []string{"a", tooLong, "ok"}},
		{name: "too long with crlf", max: 10, in: strings.Repeat("y", 100) + "\r\nok\r\n", want: []string{tooLong, "", "ok", ""}},
		{name: "too long with cr", max: 10, in: strings.Repeat("y", 100) + "\rok\r", want: []string{tooLong, "ok"}},
		// max 1024 gives a 1025-byte buffer: a 5000-byte frame spans many
		// reads whatever the reader.
		{name: "too long spanning reads", max: 1024, in: "a\n" + long + "\nok\n", want: []string{"a", tooLong, "ok"}},
		{name: "too long twice", max: 1024, in: long + "\n" + long + "\rok\n", want: []string{tooLong, tooLong, "ok"}},
		{name: "too long then max", max: 1024, in: long + "\n" + strings.Repeat("z", 1024) + "\n",
			want: []string{tooLong, strings.Repeat("z", 1024)}},
		{name: "too long at EOF", max: 1024, in: "a\n" + long, want: []string{"a", tooLong}},
		{name: "too long buffer-sized", max: 1024, in: strings.Repeat("w", 1025) + "\nok\n", want: []string{tooLong, "ok"}},
		{name: "too long terminator right after buffer", max: 1024, in: strings.Repeat("w", 1025) + "\rok\n", want: []string{tooLong, "ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, rd := range readers {
				t.Run(rd.name, func(t *testing.T) {
					got, err := readFrames(t, rd.wrap(strings.NewReader(tc.in)), tc.max)
					if err != io.EOF {
						t.Errorf("end: got %v, want %v", err, io.EOF)
					}
					if len(got)+len(tc.want) > 0 && !reflect.DeepEqual(got, tc.want) {
						t.Errorf("got %q, want %q", abbrev(got), abbrev(tc.want))
					}
				})
			}
		})
	}
}

func abbrev(frames []string) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		if len(f) > 20 {
			f = f[:10] + "..." + f[len(f)-5:]
		}
		out[i] = f
	}
	return out
}

// TestFramerBufferSize checks the doc's promise that the reader's buffer
// never grows past MaxFrame+1 bytes (or the 512-byte floor), and that an
// idle lamp's framer rests on its small buffer: it starts there and goes
// back once a long frame is consumed.
func TestFramerBufferSize(t *testing.T) {
	tests := []struct {
		name string
		max  int
		want int
	}{
		{name: "default", max: 1024, want: 1025},
		{name: "large", max: 4096, want: 4097},
		{name: "small has a floor", max: 10, want: 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			long := strings.Repeat("x", tc.max)
			f := newFramer(strings.NewReader(long+"\nok\n"), tc.max)
			if got := len(f.buf); got != smallRead {
				t.Errorf("at rest: got %d bytes, want %d", got, smallRead)
			}
			if line, err := f.next(); err != nil || len(line) != tc.max {
				t.Fatalf("got %d bytes, %v; want the %d-byte frame", len(line), err, tc.max)
			}
			if got := len(f.buf); got > tc.want {
				t.Errorf("grown: got %d bytes, want at most %d", got, tc.want)
			}
			if line, err := f.next(); err != nil || string(line) != "ok" {
				t.Fatalf("got %q, %v; want ok", line, err)
			}
			if got := len(f.buf); got != smallRead {
				t.Errorf("after the long frame: got %d bytes, want %d", got, smallRead)
			}
		})
	}
}

// TestFramerReadError checks that a read error other than EOF is returned
// as it is, and that a frame completed before it is delivered first.
func TestFramerReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom))
	got, err := readFrames(t, r, 1024)
	if !errors.Is(err, boom) {
		t.Errorf("end: got %v, want %v", err, boom)
	}
	if want := []string{"a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
