package auth

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lampgw/lampgw/internal/testwait"
)

// fakeClock is a Now that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingVerifier returns a Verifier whose bcrypt checks are counted.
func countingVerifier(opts VerifierOptions) (*Verifier, *atomic.Int64, *fakeClock) {
	var calls atomic.Int64
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	opts.Now = clock.Now
	opts.Compare = func(hash, password []byte) error {
		calls.Add(1)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	return NewVerifier(opts), &calls, clock
}

func testUsers(t *testing.T, yaml string) *Users {
	t.Helper()
	us, err := ParseUsers("users.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return us
}

var (
	lan     = netip.MustParseAddr("192.0.2.7")
	lan2    = netip.MustParseAddr("192.0.2.8")
	usersAB = "users:\n- {name: alice, role: app, hash: \"" + hashAlice + "\"}\n- {name: bob, role: viewer, hash: \"" + hashBob + "\"}\n"
)

func TestVerify(t *testing.T) {
	us := testUsers(t, usersAB)
	v, _, _ := countingVerifier(VerifierOptions{FailureBurst: 100, FailureInterval: time.Second})
	for _, tc := range []struct {
		name, user, password string
		want                 error
	}{
		{"alice", "alice", "alice-pw", nil},
		{"bob", "bob", "bob-pw", nil},
		{"wrong password", "alice", "bob-pw", ErrBadCredentials},
		{"unknown user", "carol", "alice-pw", ErrBadCredentials},
		{"empty password", "alice", "", ErrBadCredentials},
		{"no user name", "", "alice-pw", ErrBadCredentials},
		{"longer than bcrypt reads", "alice", "alice-pw" + strings.Repeat("x", MaxPasswordLen), ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := v.Verify(us, lan, tc.user, []byte(tc.password))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && u.Name != tc.user {
				t.Errorf("user: got %q, want %q", u.Name, tc.user)
			}
		})
	}
}

func TestVerifyCachesSuccesses(t *testing.T) {
	us := testUsers(t, usersAB)
	v, calls, _ := countingVerifier(VerifierOptions{})
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(us, lan, "alice", []byte("alice-pw")); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("bcrypt checks for three logins: got %d, want 1", got)
	}
	// A failure is never cached: each costs a check.
	for i := 0; i < 2; i++ {
		v.Verify(us, lan, "alice", []byte("nope"))
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("bcrypt checks after two failures: got %d, want 3", got)
	}
	// A new hash for alice: the old password no longer opens the cache.
	changed := testUsers(t, strings.Replace(usersAB, hashAlice, hashBob, 1))
	if _, err := v.Verify(changed, lan, "alice", []byte("alice-pw")); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after a change: got %v, want ErrBadCredentials", err)
	}
	if _, err := v.Verify(changed, lan, "alice", []byte("bob-pw")); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	us := testUsers(t, usersAB)
	v, calls, _ := countingVerifier(VerifierOptions{CacheSize: 1})
	for _, login := range [][2]string{{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"alice", "alice-pw"}} {
		if _, err := v.Verify(us, lan, login[0], []byte(login[1])); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.CachedLogins(); got != 1 {
		t.Errorf("cached logins: got %d, want 1", got)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("bcrypt checks: got %d, want 3 (bob pushed alice out)", got)
	}
}

// TestVerifyConcurrentLoginsCheckOnce plays a reconnect storm: many
// clients with the same user and password at once cost one bcrypt check.
func TestVerifyConcurrentLoginsCheckOnce(t *testing.T) {
	us := testUsers(t, usersAB)
	var calls atomic.Int64
	release := make(chan struct{})
	v := NewVerifier(VerifierOptions{FailureBurst: 100, FailureInterval: time.Second, Compare: func(hash, password []byte) error {
		calls.Add(1)
		<-release
		return bcrypt.CompareHashAndPassword(hash, password)
	}})
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := v.Verify(us, lan, "alice", []byte("alice-pw"))
			errs <- err
		}()
	}
	testwait.Until(t, "the first bcrypt check", func() bool { return calls.Load() == 1 })
	close(release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("login %d: %v", i, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("bcrypt checks: got %d, want 1", got)
	}
}

func TestVerifyLimitsFailuresPerAddress(t *testing.T) {
	us := testUsers(t, usersAB)
	v, calls, clock := countingVerifier(VerifierOptions{FailureBurst: 3, FailureInterval: time.Second})
	login := func(addr netip.Addr, user, password string) error {
		_, err := v.Verify(us, addr, user, []byte(password))
		return err
	}
	// Successes cost no tokens.
	for i := 0; i < 5; i++ {
		if err := login(lan, "alice", "alice-pw"); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	for i := 0; i < 3; i++ {
		if err := login(lan, "alice", "guess"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: got %v, want ErrBadCredentials", i, err)
		}
	}
	before := calls.Load()
	// The bucket is empty: even the right password (cached, too) is
	// refused, unchecked.
	for _, pw := range []string{"guess", "alice-pw"} {
		if err := login(lan, "alice", pw); !errors.Is(err, ErrTooManyFailures) {
			t.Errorf("%s while limited: got %v, want ErrTooManyFailures", pw, err)
		}
	}
	if got := calls.Load(); got != before {
		t.Errorf("bcrypt checks while limited: got %d more, want none", got-before)
	}
	// Others are not affected; a mapped address is the same address.
	if err := login(lan2, "bob", "bob-pw"); err != nil {
		t.Errorf("another address: %v", err)
	}
	if err := login(netip.AddrFrom16(lan.As16()), "alice", "alice-pw"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("IPv4-mapped form of a limited address: got %v, want ErrTooManyFailures", err)
	}
	// One interval later, one more login is checked.
	clock.advance(time.Second)
	if err := login(lan, "alice", "alice-pw"); err != nil {
		t.Errorf("after an interval: %v", err)
	}
	if err := login(lan, "alice", "guess"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("guess after the refund: got %v, want ErrBadCredentials", err)
	}
	if err := login(lan, "alice", "guess"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("second guess: got %v, want ErrTooManyFailures", err)
	}
}

func TestVerifyIPv6CountsPer64(t *testing.T) {
	us := testUsers(t, usersAB)
	v, _, _ := countingVerifier(VerifierOptions{FailureBurst: 1, FailureInterval: time.Hour})
	v.Verify(us, netip.MustParseAddr("2001:db8::1"), "alice", []byte("guess"))
	if _, err := v.Verify(us, netip.MustParseAddr("2001:db8::ffff:2"), "alice", []byte("alice-pw")); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("same /64: got %v, want ErrTooManyFailures", err)
	}
	if _, err := v.Verify(us, netip.MustParseAddr("2001:db8:0:1::1"), "alice", []byte("alice-pw")); err != nil {
		t.Errorf("next /64: %v", err)
	}
}

func TestVerifyForgetsAddressesBeyondMax(t *testing.T) {
	us := testUsers(t, usersAB)
	v, _, clock := countingVerifier(VerifierOptions{FailureBurst: 1, FailureInterval: time.Second, MaxAddrs: 2})
	for i := 1; i <= 10; i++ {
		v.Verify(us, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), "alice", []byte("guess"))
		if i == 5 {
			clock.advance(time.Second) // 1..5 are full again, and forgotten first
		}
	}
	v.mu.Lock()
	n := len(v.buckets)
	v.mu.Unlock()
	if n > 2 {
		t.Errorf("addresses remembered: got %d, want <= 2", n)
	}
}
