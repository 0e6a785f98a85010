package bridge

import (
	"bytes"
	"io"
)

// framer splits a byte stream into frames. "\n", "\r\n" and a bare "\r"
// all end a frame; "\r\n" yields an empty frame after the "\r", which
// callers ignore like any blank line. Its buffer is fixed at max+1 bytes
// plus room for reads, so a lamp can never make it grow.
type framer struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int
	// discarding is set after an oversized frame until its terminator.
	discarding bool
}

func newFramer(r io.Reader, max int) *framer {
	size := max + 1
	if size < 512 {
		size = 512
	}
	return &framer{r: r, buf: make([]byte, size), max: max}
}

// next returns the next frame without its terminator. The slice is valid
// until the following call. A frame longer than max gives ErrFrameTooLong
// once; reading then resumes after that frame's terminator. Read errors
// (io.EOF at a clean end) are returned as they are; a partial frame at EOF
// is dropped, since the lamp never finished it.
func (f *framer) next() ([]byte, error) {
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
