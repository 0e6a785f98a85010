package bridge

import (
	"bytes"
	"io"
	"sync"
)

// framer splits a byte stream into frames. "\n", "\r\n" and a bare "\r"
// all end a frame; "\r\n" yields an empty frame after the "\r", which
// callers ignore like any blank line.
//
// Its buffer starts small (smallRead bytes, inside the framer), which
// holds the frames lamps usually send, and grows to max+1 bytes (at
// least 512, room for reads) only for a longer frame: a lamp can never
// make it grow further. The large buffer goes back to a pool as soon as
// it holds nothing, so an idle lamp waits on the small one.
type framer struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int
	// discarding is set after an oversized frame until its terminator.
	discarding bool
	small      [smallRead]byte
}

// smallRead is the framer's resting buffer: a text report of every known
// key ("brightness=1023 ambient=65535 mode=manual power=off") is 51
// bytes, a JSON one 72.
const smallRead = 256

// largeReads holds the framers' large buffers (*[]byte) between long
// frames.
var largeReads sync.Pool

func newFramer(r io.Reader, max int) *framer {
	f := &framer{r: r, max: max}
	f.buf = f.small[:]
	return f
}

// largeSize is the size of the grown buffer.
func (f *framer) largeSize() int { return max(f.max+1, 512) }

// grow moves the buffered bytes to a large buffer.
func (f *framer) grow() {
	size := f.largeSize()
	var b []byte
	if p, _ := largeReads.Get().(*[]byte); p != nil && cap(*p) >= size {
		b = (*p)[:size]
	} else {
		b = make([]byte, size)
	}
	f.end = copy(b, f.buf[f.start:f.end])
	f.start = 0
	f.buf = b
}

// shrink gives an empty large buffer back to the pool.
func (f *framer) shrink() {
	if len(f.buf) == len(f.small) || f.start != f.end {
		return
	}
	b := f.buf
	largeReads.Put(&b)
	f.buf = f.small[:]
	f.start, f.end = 0, 0
}

// next returns the next frame without its terminator. The slice is valid
// until the following call. A frame longer than max gives ErrFrameTooLong
// once; reading then resumes after that frame's terminator. Read errors
// (io.EOF at a clean end) are returned as they are; a partial frame at EOF
// is dropped, since the lamp never finished it.
func (f *framer) next() ([]byte, error) {
	f.shrink() // the previous frame is no longer used
	for {
		if i := bytes.IndexAny(f.buf[f.start:f.end], "\r\n"); i >= 0 {
			line := f.buf[f.start : f.start+i]
			f.start += i + 1
			if f.discarding {
				f.discarding = false
				continue
			}
			if len(line) > f.max {
				return nil, ErrFrameTooLong
			}
			return line, nil
		}
		if f.discarding {
			f.start, f.end = 0, 0
		} else if f.end-f.start > f.max {
			f.start, f.end = 0, 0
			f.discarding = true
			return nil, ErrFrameTooLong
		}
		if f.start > 0 {
			f.end = copy(f.buf, f.buf[f.start:f.end])
			f.start = 0
		}
		if f.end == len(f.buf) {
			// Only the small buffer fills up: the large one has room
			// for max+1 bytes, and more than max were refused above.
			f.grow()
		}
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if n > 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
}
