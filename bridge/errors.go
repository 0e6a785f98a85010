package bridge

import "errors"

// Errors of the wire protocol. Their text, without the "bridge: " prefix,
// is what a lamp reads after "ERR ".
var (
	// ErrFrameTooLong means a line exceeded Options.MaxFrame bytes; the
	// rest of it up to the next terminator is discarded.
	ErrFrameTooLong = errors.New("bridge: frame too long")
	// ErrInvalidUTF8 means a frame was not valid UTF-8.
	ErrInvalidUTF8 = errors.New("bridge: invalid UTF-8")
	// ErrMalformed means a frame is neither HELLO, key=value pairs nor a
	// JSON object; it is wrapped with the detail.
	ErrMalformed = errors.New("bridge: malformed frame")
	// ErrBadID means an id does not match ^[A-Za-z0-9_-]{1,64}$.
	ErrBadID = errors.New("bridge: invalid id")
	// ErrNotIdentified means a frame other than an identification arrived
	// before the lamp identified.
	ErrNotIdentified = errors.New("bridge: not identified")
	// ErrIDMismatch means a JSON frame's "id" differs from the session's.
	ErrIDMismatch = errors.New("bridge: id mismatch")
	// ErrAlreadyIdentified means a HELLO named a different id than the
	// one the connection already speaks for.
	ErrAlreadyIdentified = errors.New("bridge: already identified")
	// ErrNoValues means every key of a frame was refused.
	ErrNoValues = errors.New("bridge: no valid values")
	// ErrTooManyBadFrames means the connection sent Options.MaxBadFrames
	// bad frames in a row and is being closed.
	ErrTooManyBadFrames = errors.New("bridge: too many bad frames")
	// ErrSlowLamp means the lamp did not read its commands fast enough and
	// its write queue filled up; the connection is closed.
	ErrSlowLamp = errors.New("bridge: lamp too slow to read commands")
	// ErrTakenOver means another connection identified with the same id.
	ErrTakenOver = errors.New("bridge: taken over by a new connection")
	// ErrDeviceRemoved closes the connection of a lamp removed from the
	// devices file.
	ErrDeviceRemoved = errors.New("bridge: device removed from the devices file")
	// ErrDeviceChanged closes the connection of a lamp whose settings in
	// the devices file changed, so that they apply from a fresh start.
	ErrDeviceChanged = errors.New("bridge: device settings changed")
	// ErrNotAuthorized refuses an identification: a wrong or missing
	// token, a HELLO for a lamp known by its address, or a take-over
	// without the connected lamp's token. The connection is closed.
	ErrNotAuthorized = errors.New("bridge: not authorized")
	// ErrUnknownDevice refuses a HELLO for an id that is not in the
	// devices file, under Options.RequireKnownDevices.
	ErrUnknownDevice = errors.New("bridge: unknown device")
	// ErrTooManyFailures refuses an identification from an address that
	// failed too often lately, without checking it.
	ErrTooManyFailures = errors.New("bridge: too many failed attempts, try later")
	// ErrTooManyConnections refuses a connection over Options.MaxConns or
	// Options.MaxConnsPerAddr.
	ErrTooManyConnections = errors.New("bridge: too many connections")
	// ErrMovedAway closes the connection of a lamp that another bridge
	// on the same broker holds now (Server.Release): it reconnected
	// there while this one had not noticed it was gone.
	ErrMovedAway = errors.New("bridge: lamp moved to another bridge")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("bridge: server closed")
)

// Internal causes of a connection's end, wrapped around the net error.
var (
	errWrite        = errors.New("write")
	errTLSHandshake = errors.New("tls handshake")
)

// Errors of CheckReply, each wrapped with the detail. A command whose
// reply address is refused still runs, without replies.
var (
	// ErrResponseTopic refuses an MQTT 5 response topic: not a topic
	// name, too long, under the lamp prefix, or the gateway's own.
	ErrResponseTopic = errors.New("bridge: response topic refused")
	// ErrCorrelationData refuses correlation data over MaxCorrelation
	// bytes.
	ErrCorrelationData = errors.New("bridge: correlation data refused")
)
