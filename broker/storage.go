package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// DefaultMaxSessionExpiry caps how long the broker keeps the session of
// a disconnected client that asked for one (MQTT 3.1.1 clean session 0,
// MQTT 5 Session Expiry Interval > 0): its subscriptions and the QoS 1
// and 2 messages queued for it. mochi's default is no limit, so every
// client id that ever connected with clean session 0 would be kept, in
// memory and on disk, forever. A day covers a phone app left closed
// overnight; after longer, an app starts from the retained state like a
// new one.
const DefaultMaxSessionExpiry = 24 * time.Hour

// Storage is what the broker needs of a key-value store to keep its
// state across restarts (store.Namespace is one). Writes must not wait
// for the disk: the broker writes on the publisher's goroutine. Scan
// calls fn with each record whose key starts with prefix; key and value
// are valid only during the call and fn does not write.
type Storage interface {
	Set(key, value []byte) error
	Delete(key []byte) error
	DeletePrefix(prefix []byte) error
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// Key layout under Storage. Topics and client ids cannot hold a NUL
// [MQTT-1.5.3-2], so it ends the client id; a session of a client id
// that holds one anyway (mochi does not refuse them) is not stored.
const (
	keyRetained = "retained/" // + topic: storedMessage
	keyClient   = "client/"   // + client id: storage.Client
	keySub      = "sub/"      // + client id + NUL + filter: storage.Subscription
	keyInflight = "inflight/" // + client id + NUL + packet id, 2 bytes big-endian: storedMessage
)

func retainedKey(topic string) []byte { return []byte(keyRetained + topic) }
func clientKey(id string) []byte      { return []byte(keyClient + id) }
func subPrefix(id string) []byte      { return []byte(keySub + id + "\x00") }
func subKey(id, filter string) []byte { return append(subPrefix(id), filter...) }
func inflightPrefix(id string) []byte { return []byte(keyInflight + id + "\x00") }
func inflightKey(id string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(inflightPrefix(id), packetID)
}

// storedMessage is mochi's storage.Message plus what its ToPacket leaves
// out: without Expiry and Protocol, a restored MQTT 5 message whose
// Message Expiry Interval has passed would never expire (server.go
// clearExpiredRetainedMessages and Client.ClearExpiredInflights test
// both).
type storedMessage struct {
	storage.Message
	Expiry   int64 `json:"expiry,omitempty"`
	Protocol byte  `json:"protocol,omitempty"`
}

func newStoredMessage(client string, pk packets.Packet, sent int64) storedMessage {
	props := pk.Properties.Copy(false)
	return storedMessage{
		Message: storage.Message{
			Client:      client,
			Origin:      pk.Origin,
			PacketID:    pk.PacketID,
			FixedHeader: pk.FixedHeader,
			TopicName:   pk.TopicName,
			Payload:     pk.Payload,
			Sent:        sent,
			Created:     pk.Created,
			Properties: storage.MessageProperties{
				PayloadFormat:          props.PayloadFormat,
				PayloadFormatFlag:      props.PayloadFormatFlag,
				MessageExpiryInterval:  props.MessageExpiryInterval,
				ContentType:            props.ContentType,
				ResponseTopic:          props.ResponseTopic,
				CorrelationData:        props.CorrelationData,
				SubscriptionIdentifier: props.SubscriptionIdentifier,
				User:                   props.User,
			},
		},
		Expiry:   pk.Expiry,
		Protocol: pk.ProtocolVersion,
	}
}

func (m storedMessage) toPacket() packets.Packet {
	pk := m.ToPacket()
	pk.Expiry = m.Expiry
	pk.ProtocolVersion = m.Protocol
	return pk
}

// storageHook keeps the broker's retained messages and persistent
// sessions in a Storage and gives them back to mochi at Serve, before
// any listener accepts (server.go Serve calls readStore before
// Listeners.ServeAll).
//
// It is ours rather than mochi's hooks/storage/pebble, whose v2.7.9 we
// read and found: its Stored* iterators are never closed (pebble's Close
// then fails and the files they pin stay), a failed NewIter is a nil
// dereference, a record that does not decode is skipped without a word,
// it writes $SYS info at every $SYS tick (a write a second on an SD card,
// for counters nobody restores), it stores the sessions of clean-session
// clients too (three writes per connection), it never deletes a
// session's subscriptions or queued messages when the session ends or
// expires, so they pile up and come back as subscriptions of nobody
// (server.go loadSubscriptions subscribes them whether or not the client
// exists), it stores a refused subscription with its failure code as
// QoS, and its database is out of reach, so nothing else can share it
// and it cannot be synced on a timer. Records here are mochi's own types
// (hooks/storage), JSON as in mochi's hooks, in a key layout of ours.
//
// What is kept:
//   - every retained message, until it is cleared or expires;
//   - the session of every client that asked for one: its client record,
//     subscriptions and QoS > 0 messages in flight, until the session
//     ends (clean start, session expiry 0 at DISCONNECT, expiry). Clean
//     sessions, the common case, cost no write at all.
//
// Records whose client has no session (a crash between writes) are
// deleted at load, so nothing accumulates.
type storageHook struct {
	mqtt.HookBase
	st      Storage
	srv     *mqtt.Server
	restore func(topic string, payload []byte) []byte
	log     zerolog.Logger
	errLog  zerolog.Logger // sampled: a failing disk fails every write

	mu       sync.Mutex
	sessions map[string]struct{} // client ids with a stored client record

	// loaded counts what the Stored* calls loaded, for OnStarted. mochi
	// makes those calls one after another in Serve.
	loaded struct {
		start                               time.Time
		retained, rewritten, sessions, subs int
		inflight, undecodable, orphans      int
	}
}

func newStorageHook(srv *mqtt.Server, st Storage, restore func(string, []byte) []byte, log zerolog.Logger) *storageHook {
	return &storageHook{
		st:       st,
		srv:      srv,
		restore:  restore,
		log:      log,
		errLog:   log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
		sessions: map[string]struct{}{},
	}
}

func (h *storageHook) ID() string { return "lampgw-storage" }

func (h *storageHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnWillSent,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnClientExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages,
		mqtt.StoredRetainedMessages, mqtt.OnStarted:
		return true
	}
	return false
}

// persistent reports whether cl's session outlives its connection, by
// mochi's own rule (server.go EstablishConnection, loadClients).
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline || strings.ContainsRune(cl.ID, 0) {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (h *storageHook) stored(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.sessions[id]
	return ok
}

func (h *storageHook) set(key []byte, v any) {
	data, err := json.Marshal(v)
	if err == nil {
		err = h.st.Set(key, data)
	}
	h.failed("write", key, err)
}

func (h *storageHook) del(key []byte) { h.failed("delete", key, h.st.Delete(key)) }

func (h *storageHook) failed(op string, key []byte, err error) {
	if err != nil {
		h.errLog.Error().Err(err).Str("op", op).Bytes("key", key).Msg("storage failed")
	}
}

// putClient stores cl's client record, making its session stored. An
// MQTT 5 enhanced-authentication exchange belongs to one connection and
// is not kept (mochi's hook stores it).
func (h *storageHook) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	h.set(clientKey(cl.ID), storage.Client{
		ID:              cl.ID,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
	h.mu.Lock()
	h.sessions[cl.ID] = struct{}{}
	h.mu.Unlock()
}

// dropSession deletes id's stored session, if it has one.
func (h *storageHook) dropSession(id string) {
	h.mu.Lock()
	_, ok := h.sessions[id]
	delete(h.sessions, id)
	h.mu.Unlock()
	if !ok {
		return
	}
	h.del(clientKey(id))
	h.failed("delete", subPrefix(id), h.st.DeletePrefix(subPrefix(id)))
	h.failed("delete", inflightPrefix(id), h.st.DeletePrefix(inflightPrefix(id)))
}

// OnSessionEstablished stores a persistent session's client record, or
// drops the stored session a clean one replaces. mochi has already
// inherited or discarded the old session's state (inheritClientSession:
// a clean start unsubscribes it, which OnUnsubscribed follows, and
// clears its inflight messages, which OnQosDropped follows).
func (h *storageHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl)
	} else if !cl.Net.Inline {
		h.dropSession(cl.ID)
	}
}

// OnDisconnect keeps a persistent session's record up to date (its will
// is cleared after a normal DISCONNECT) or drops a session that ends
// with the connection. A client taken over by a new connection with the
// same id leaves the records to the new one.
func (h *storageHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.IsTakenOver() {
		return
	}
	if expire {
		h.dropSession(cl.ID)
	} else if persistent(cl) {
		h.putClient(cl)
	}
}

// OnWillSent stores the client record without the will mochi just sent.
func (h *storageHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) && h.stored(cl.ID) {
		h.putClient(cl)
	}
}

// OnSubscribed stores the granted subscriptions of a persistent session;
// a refused one (reason code 0x80 and up) is no subscription.
func (h *storageHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		h.set(subKey(cl.ID, f.Filter), storage.Subscription{
			Client:            cl.ID,
			Filter:            f.Filter,
			Qos:               codes[i],
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainHandling:    f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

func (h *storageHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || !h.stored(cl.ID) {
		return
	}
	for _, f := range pk.Filters {
		h.del(subKey(cl.ID, f.Filter))
	}
}

// OnQosPublish stores a QoS > 0 message sent (or queued, while the
// client is away) to a persistent session, so it is sent again after a
// restart [MQTT-4.4.0-1]. mochi bounds each client's by
// Capabilities.MaximumInflight.
func (h *storageHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if persistent(cl) {
		h.set(inflightKey(cl.ID, pk.PacketID), newStoredMessage(cl.ID, pk, sent))
	}
}

func (h *storageHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if !cl.Net.Inline && h.stored(cl.ID) {
		h.del(inflightKey(cl.ID, pk.PacketID))
	}
}

func (h *storageHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.OnQosComplete(cl, pk)
}

// OnRetainMessage follows the retained store: r is 1 for a message
// stored, -1 for one cleared and 0 for an empty PUBLISH that cleared
// nothing (topics.go RetainMessage).
func (h *storageHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	switch r {
	case 1:
		h.set(retainedKey(pk.TopicName), newStoredMessage("", pk, 0))
	case -1:
		h.del(retainedKey(pk.TopicName))
	}
}

func (h *storageHook) OnRetainedExpired(topic string) { h.del(retainedKey(topic)) }

func (h *storageHook) OnClientExpired(cl *mqtt.Client) { h.dropSession(cl.ID) }

// load scans prefix, decoding each value with decode; a value that does
// not decode is counted and skipped, not fatal: it is one lost record,
// and the data dir passed store.Open's checksums, so it is not damage.
// The keys for which drop returns true are deleted after the scan.
func (h *storageHook) load(prefix string, decode func(key, value []byte) error, drop func(key []byte) bool) error {
	var dropped [][]byte
	err := h.st.Scan([]byte(prefix), func(k, v []byte) error {
		if drop != nil && drop(k) {
			dropped = append(dropped, bytes.Clone(k))
			return nil
		}
		if err := decode(k, v); err != nil {
			h.loaded.undecodable++
			h.log.Warn().Err(err).Bytes("key", k).Msg("stored record skipped: it does not decode")
		}
		return nil
	})
	for _, k := range dropped {
		h.del(k)
	}
	h.loaded.orphans += len(dropped)
	return err
}

func (h *storageHook) StoredClients() (v []storage.Client, err error) {
	h.loaded.start = time.Now()
	err = h.load(keyClient, func(_, data []byte) error {
		var c storage.Client
		if err := json.Unmarshal(data, &c); err != nil {
			return err
		}
		v = append(v, c)
		h.mu.Lock()
		h.sessions[c.ID] = struct{}{}
		h.mu.Unlock()
		return nil
	}, nil)
	h.loaded.sessions = len(v)
	return v, err
}

// orphan reports whether a sub/ or inflight/ key belongs to a client
// without a stored session.
func (h *storageHook) orphan(prefix string) func(key []byte) bool {
	return func(key []byte) bool {
		id, _, ok := bytes.Cut(key[len(prefix):], []byte{0})
		return !ok || !h.stored(string(id))
	}
}

func (h *storageHook) StoredSubscriptions() (v []storage.Subscription, err error) {
	err = h.load(keySub, func(_, data []byte) error {
		var s storage.Subscription
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v = append(v, s)
		return nil
	}, h.orphan(keySub))
	h.loaded.subs = len(v)
	return v, err
}

// StoredInflightMessages puts each stored QoS > 0 message back in its
// client's inflight map itself and returns none: mochi's own loadInflight
// goes through storage.Message.ToPacket, which loses Expiry. mochi has
// loaded the clients by now (server.go readStore loads each kind before
// asking for the next).
func (h *storageHook) StoredInflightMessages() ([]storage.Message, error) {
	err := h.load(keyInflight, func(_, data []byte) error {
		var m storedMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		if cl, ok := h.srv.Clients.Get(m.Client); ok && cl.State.Inflight.Set(m.toPacket()) {
			h.loaded.inflight++
		}
		return nil
	}, h.orphan(keyInflight))
	return nil, err
}

// StoredRetainedMessages puts each stored retained message back in the
// retained store itself, after Options.RestoreRetained has had its say,
// and returns none (mochi's loadRetained would lose Expiry, as above).
// A message RestoreRetained changes or drops is changed or dropped in
// Storage too.
func (h *storageHook) StoredRetainedMessages() ([]storage.Message, error) {
	type change struct {
		key []byte
		m   *storedMessage // nil: delete
	}
	var changes []change
	err := h.load(keyRetained, func(k, data []byte) error {
		var m storedMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		if h.restore != nil {
			payload := h.restore(m.TopicName, m.Payload)
			if !bytes.Equal(payload, m.Payload) {
				h.loaded.rewritten++
				m.Payload = bytes.Clone(payload)
				c := change{key: bytes.Clone(k), m: &m}
				if len(payload) == 0 {
					c.m = nil
				}
				changes = append(changes, c)
			}
		}
		if len(m.Payload) > 0 {
			h.srv.Topics.RetainMessage(m.toPacket())
			h.loaded.retained++
		}
		return nil
	}, nil)
	// After the scan: Storage.Scan's fn must not write.
	for _, c := range changes {
		if c.m == nil {
			h.del(c.key)
		} else {
			h.set(c.key, c.m)
		}
	}
	return nil, err
}

// OnStarted sets the $SYS counters mochi's load leaves out and logs what
// was loaded.
func (h *storageHook) OnStarted() {
	atomic.StoreInt64(&h.srv.Info.Retained, int64(h.srv.Topics.Retained.Len()))
	atomic.AddInt64(&h.srv.Info.Subscriptions, int64(h.loaded.subs))
	atomic.AddInt64(&h.srv.Info.Inflight, int64(h.loaded.inflight))
	l := h.loaded
	h.log.Info().
		Int("retained", l.retained).
		Int("retained_rewritten", l.rewritten).
		Int("sessions", l.sessions).
		Int("subscriptions", l.subs).
		Int("inflight", l.inflight).
		Int("orphans_deleted", l.orphans).
		Int("undecodable", l.undecodable).
		Dur("took", time.Since(l.start)).
		Msg("broker state loaded")
}

// expiryHook ends the subscriptions of a session that expired. mochi
// v2.7.9 only drops the client (server.go clearExpiredClients): its
// subscriptions stay in the topic index, matched and skipped on every
// publish, and its inflight messages stay counted, for as long as the
// broker runs. With or without Storage.
type expiryHook struct {
	mqtt.HookBase
	srv *mqtt.Server
}

func (h *expiryHook) ID() string { return "lampgw-session-expiry" }

func (h *expiryHook) Provides(b byte) bool { return b == mqtt.OnClientExpired }

func (h *expiryHook) OnClientExpired(cl *mqtt.Client) {
	h.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
}
