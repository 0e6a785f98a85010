package hadiscovery

import "errors"

var (
	// ErrBadPrefix means a Home Assistant prefix is not one or more topic
	// levels without wildcards (topics.CheckPrefix), or overlaps the lamp
	// prefix or lampgw/: Home Assistant's birth message and configs would
	// then be lamp or gateway topics, which no client may publish.
	ErrBadPrefix = errors.New("hadiscovery: invalid Home Assistant prefix")
	// ErrNoBus means Options.Bus is nil.
	ErrNoBus = errors.New("hadiscovery: no bus")
	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("hadiscovery: already started")
)
