package devices

// Store keeps what the registry must not lose in a restart: each device's
// pending commands (its desired state), with their request ids and times.
// The registry calls Put under the device's lock whenever a device's
// pending commands change, and All once, in NewRegistry. Implementations
// must be safe for concurrent use; Put should not wait for the disk (the
// gateway's store syncs on its own schedule, see package store).
type Store interface {
	// Put replaces id's saved record with data; empty data deletes it.
	Put(id string, data []byte) error
	// All calls fn with every saved record, stopping at fn's first error.
	All(fn func(id string, data []byte) error) error
}
