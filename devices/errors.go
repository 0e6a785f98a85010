package devices

import "errors"

var (
	// ErrInvalidValue is matched (errors.Is) by every *ValueError.
	ErrInvalidValue = errors.New("devices: invalid value")
	// ErrTooManyDevices means the registry is full; see Options.MaxDevices.
	ErrTooManyDevices = errors.New("devices: too many devices")
	// ErrBadFile is matched (errors.Is) by every *FileError.
	ErrBadFile = errors.New("devices: bad devices file")
)

// ValueError refuses one key of a report or a command. Its text is short
// enough to send to a lamp as "ERR <text>".
type ValueError struct {
	Key    string
	Reason string
}

func (e *ValueError) Error() string {
	if e.Key == "" {
		return e.Reason
	}
	return e.Key + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidValue) true for every ValueError.
func (e *ValueError) Is(target error) bool { return target == ErrInvalidValue }
