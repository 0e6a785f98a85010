package api

import "errors"

var (
	// ErrInvalidOptions is returned by New for Options without a Registry
	// or a Bus, or with an invalid Prefix.
	ErrInvalidOptions = errors.New("api: invalid options")
	// ErrTooManyStreams is the reason a GET /api/events beyond
	// Options.MaxStreams is answered 503.
	ErrTooManyStreams = errors.New("api: too many event streams")
)
