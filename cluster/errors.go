package cluster

import "errors"

var (
	// ErrInvalidOptions is returned by New for a missing Bus or an
	// instance id that cannot be a topic level of its own.
	ErrInvalidOptions = errors.New("cluster: invalid options")
	// ErrBadRecord means a pending-commands record in the broker did
	// not decode; the record is ignored.
	ErrBadRecord = errors.New("cluster: bad pending record")
)
