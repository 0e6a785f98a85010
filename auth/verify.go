package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Defaults for zero VerifierOptions fields.
const (
	DefaultCacheSize       = 1024
	DefaultFailureBurst    = 5
	DefaultFailureInterval = 2 * time.Second
	DefaultMaxAddrs        = 10000
)

// VerifierOptions configure a Verifier. Zero fields mean the defaults.
type VerifierOptions struct {
	// CacheSize bounds how many successful logins are remembered, least
	// recently used first out; 0 means DefaultCacheSize.
	CacheSize int
	// FailureBurst is how many failed logins an address may have at once;
	// it then gets one more every FailureInterval, and until then every
	// login from it is refused unchecked. 0 means DefaultFailureBurst and
	// DefaultFailureInterval.
	FailureBurst    int
	FailureInterval time.Duration
	// MaxAddrs bounds how many addresses' failures are remembered; 0
	// means DefaultMaxAddrs.
	MaxAddrs int
	// Now and Compare replace time.Now and bcrypt.CompareHashAndPassword,
	// for tests.
	Now     func() time.Time
	Compare func(hash, password []byte) error
}

// Verifier checks user names and passwords against a Users. It is safe
// for concurrent use.
//
// bcrypt takes 50-100 ms a check on purpose, which a reconnect storm (a
// hundred dashboards after a restart) or a password guesser would turn
// into minutes of CPU. So Verifier
//
//   - remembers successful logins, keyed by the user, the hash in force
//     and an HMAC-SHA-256 of the password under a key made for this
//     Verifier (a memory dump holds no plain SHA-256 to look up), so a
//     known password costs a map lookup and a changed one never matches;
//   - checks one (user, password) once at a time: concurrent logins with
//     it wait for the first check;
//   - runs at most GOMAXPROCS bcrypt checks at once;
//   - counts failures per address (an IPv4 address, an IPv6 /64, which
//     one host usually has whole) in a token bucket, and refuses every
//     login from an address whose bucket is empty without checking it.
//     Cached logins are refused too: a guess answered from the cache
//     would tell the guesser it was right at full speed. A login takes a
//     token before it is checked, and a success gives it back, so
//     concurrent guesses cannot outrun the bucket.
type Verifier struct {
	opts VerifierOptions
	key  [32]byte // HMAC key of the cache
	sem  chan struct{}

	mu      sync.Mutex
	cache   map[cacheKey]*list.Element
	lru     *list.List // of cacheKey, most recent first
	flights map[cacheKey]*flight
	buckets map[netip.Prefix]*bucket
}

type cacheKey struct {
	name, hash string
	mac        [sha256.Size]byte
}

// flight is one bcrypt check that other logins with the same key wait
// for.
type flight struct {
	done chan struct{}
	ok   bool
}

// bucket holds an address's failure tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// NewVerifier returns a Verifier with opts' zero fields defaulted.
func NewVerifier(opts VerifierOptions) *Verifier {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.FailureBurst <= 0 || opts.FailureInterval <= 0 {
		opts.FailureBurst, opts.FailureInterval = DefaultFailureBurst, DefaultFailureInterval
	}
	if opts.MaxAddrs <= 0 {
		opts.MaxAddrs = DefaultMaxAddrs
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Compare == nil {
		opts.Compare = bcrypt.CompareHashAndPassword
	}
	v := &Verifier{
		opts:    opts,
		sem:     make(chan struct{}, runtime.GOMAXPROCS(0)),
		cache:   map[cacheKey]*list.Element{},
		lru:     list.New(),
		flights: map[cacheKey]*flight{},
		buckets: map[netip.Prefix]*bucket{},
	}
	// rand.Read never fails (crypto/rand, Go 1.24).
	rand.Read(v.key[:])
	return v
}

// Verify returns the user of users called name if password is theirs.
// Otherwise it returns ErrBadCredentials (unknown user or wrong password,
// in about the same time) or ErrTooManyFailures (remote failed too often
// lately; nothing was checked). remote may be the zero Addr, which counts
// as one address.
func (v *Verifier) Verify(users *Users, remote netip.Addr, name string, password []byte) (*User, error) {
	now := v.opts.Now()
	addr := addrKey(remote)

	v.mu.Lock()
	if !v.takeLocked(addr, now) {
		v.mu.Unlock()
		return nil, ErrTooManyFailures
	}
	if len(password) > MaxPasswordLen {
		// bcrypt would check only the first MaxPasswordLen bytes.
		v.mu.Unlock()
		return nil, ErrBadCredentials
	}
	u, ok := users.Lookup(name)
	if !ok {
		v.mu.Unlock()
		// Spend what a real check would, against a real hash of the same
		// cost, so that timing does not tell which user names exist.
		if users.Len() > 0 {
			v.compare([]byte(users.List[0].Hash), password)
		}
		return nil, ErrBadCredentials
	}
	key := cacheKey{name: name, hash: u.Hash, mac: v.mac(password)}
	if e, hit := v.cache[key]; hit {
		v.lru.MoveToFront(e)
		v.refundLocked(addr, now)
		v.mu.Unlock()
		return u, nil
	}
	f, waiting := v.flights[key]
	if !waiting {
		f = &flight{done: make(chan struct{})}
		v.flights[key] = f
	}
	v.mu.Unlock()

	if waiting {
		<-f.done
	} else {
		f.ok = v.compare([]byte(u.Hash), password) == nil
	}

	v.mu.Lock()
	if !waiting {
		delete(v.flights, key)
		if f.ok {
			v.rememberLocked(key)
		}
		close(f.done)
	}
	if f.ok {
		v.refundLocked(addr, v.opts.Now())
	}
	v.mu.Unlock()
	if !f.ok {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// compare runs one bcrypt check, at most GOMAXPROCS at once.
func (v *Verifier) compare(hash, password []byte) error {
	v.sem <- struct{}{}
	defer func() { <-v.sem }()
	return v.opts.Compare(hash, password)
}

func (v *Verifier) mac(password []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, v.key[:])
	m.Write(password)
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// rememberLocked caches key, dropping the least recently used entry when
// the cache is full.
func (v *Verifier) rememberLocked(key cacheKey) {
	if _, ok := v.cache[key]; ok {
		return
	}
	if v.lru.Len() >= v.opts.CacheSize {
		oldest := v.lru.Back()
		delete(v.cache, oldest.Value.(cacheKey))
		v.lru.Remove(oldest)
	}
	v.cache[key] = v.lru.PushFront(key)
}

// takeLocked takes one failure token from addr's bucket, reporting false
// if it has none.
func (v *Verifier) takeLocked(addr netip.Prefix, now time.Time) bool {
	b, ok := v.buckets[addr]
	if !ok {
		v.makeRoomLocked(now)
		b = &bucket{tokens: float64(v.opts.FailureBurst), last: now}
		v.buckets[addr] = b
	}
	v.fill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refundLocked gives back the token a successful login took.
func (v *Verifier) refundLocked(addr netip.Prefix, now time.Time) {
	if b, ok := v.buckets[addr]; ok {
		v.fill(b, now)
		b.tokens = min(b.tokens+1, float64(v.opts.FailureBurst))
	}
}

func (v *Verifier) fill(b *bucket, now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.tokens+float64(now.Sub(b.last))/float64(v.opts.FailureInterval), float64(v.opts.FailureBurst))
		b.last = now
	}
}

// makeRoomLocked keeps the bucket map under MaxAddrs: it forgets buckets
// that are full again, which are no different from new ones, and if that
// is not enough, any one bucket.
func (v *Verifier) makeRoomLocked(now time.Time) {
	if len(v.buckets) < v.opts.MaxAddrs {
		return
	}
	for k, b := range v.buckets {
		if v.fill(b, now); b.tokens >= float64(v.opts.FailureBurst) {
			delete(v.buckets, k)
		}
	}
	for k := range v.buckets {
		if len(v.buckets) < v.opts.MaxAddrs {
			break
		}
		delete(v.buckets, k)
	}
}

// addrKey is the unit failures are counted in: an IPv4 address or an
// IPv6 /64.
func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// CachedLogins returns how many successful logins are remembered.
func (v *Verifier) CachedLogins() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}
