package console

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRedteamLoginFailureKeysBounded: the failed-login table is keyed by
// the user name as sent; a name no account can have (64 KiB of it) must
// not be kept there, so ten thousand such names cannot hold hundreds of
// megabytes. The address is still counted.
func TestRedteamLoginFailureKeysBounded(t *testing.T) {
	c := &Console{cfg: Config{Now: time.Now, LoginFailures: DefaultLoginFailures, LoginWindow: DefaultLoginWindow},
		users: &users{path: filepath.Join(t.TempDir(), "users.json")}, hashes: make(chan struct{}, 2),
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}}
	long := strings.Repeat("a", 60<<10)
	req := httptest.NewRequest("POST", "/console/api/login", strings.NewReader(`{"user":"`+long+`","password":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	c.login(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("login with a 60 KiB name: %d %s", rec.Code, rec.Body)
	}
	for k := range c.failures {
		if len(k) > 128 {
			t.Errorf("failed-login key of %d bytes kept", len(k))
		}
	}
	if len(c.failures["addr:"+clientAddr(req)]) != 1 {
		t.Errorf("the address's failure was not counted: %v", c.failures)
	}
}

// TestRedteamLoginIPv6Prefix: one client holds a whole IPv6 /64; failed
// logins spread over its addresses (each with another name, as password
// spraying does) are counted together.
func TestRedteamLoginIPv6Prefix(t *testing.T) {
	c := &Console{cfg: Config{Now: time.Now, LoginFailures: DefaultLoginFailures, LoginWindow: DefaultLoginWindow},
		users: &users{path: filepath.Join(t.TempDir(), "users.json")}, hashes: make(chan struct{}, 2),
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}}
	last := 0
	for i := 0; i <= DefaultLoginFailures; i++ {
		req := httptest.NewRequest("POST", "/console/api/login", strings.NewReader(`{"user":"u`+string(rune('a'+i))+`","password":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "[2001:db8:1:2::" + string(rune('a'+i)) + "]:443"
		rec := httptest.NewRecorder()
		c.login(rec, req)
		last = rec.Code
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("login after %d failures from one /64: %d", DefaultLoginFailures, last)
	}
	// Another /64, and IPv4 addresses, are counted on their own.
	for _, remote := range []string{"[2001:db8:1:3::1]:443", "192.0.2.1:443", "192.0.2.2:443"} {
		req := httptest.NewRequest("POST", "/console/api/login", strings.NewReader(`{"user":"zed","password":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		c.login(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d", remote, rec.Code)
		}
	}
}

// TestRedteamLoginConcurrentGuesses: failed logins were counted after the
// password hash, so guesses sent at once all passed the limit's check
// before any had failed: a burst of twenty from one address had twenty
// passwords tried instead of five.
func TestRedteamLoginConcurrentGuesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.json")
	if _, err := AddUser(path, "olga", RoleAdmin); err != nil {
		t.Fatal(err)
	}
	c := &Console{cfg: Config{Now: time.Now, LoginFailures: DefaultLoginFailures, LoginWindow: DefaultLoginWindow},
		users: &users{path: path}, hashes: make(chan struct{}, 2),
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}}
	const burst = 20
	codes := make(chan int, burst)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req := httptest.NewRequest("POST", "/console/api/login", strings.NewReader(`{"user":"olga","password":"guess"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			c.login(rec, req)
			codes <- rec.Code
		}()
	}
	close(start)
	wg.Wait()
	close(codes)
	tried := 0
	for code := range codes {
		if code == http.StatusUnauthorized {
			tried++
		}
	}
	if tried > DefaultLoginFailures {
		t.Fatalf("%d passwords tried in one burst, the limit is %d", tried, DefaultLoginFailures)
	}
}

// TestRedteamSessionsPerUser: one account logging in again and again
// (a viewer, say) must not push every other operator's session out of
// the bounded session table.
func TestRedteamSessionsPerUser(t *testing.T) {
	c := &Console{cfg: Config{Now: time.Now, SessionTTL: DefaultSessionTTL, IdleTimeout: DefaultIdleTimeout},
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}}
	req := httptest.NewRequest("POST", "/console/api/login", nil)
	now := time.Now()
	c.newSession(httptest.NewRecorder(), req, "olga", false, now)
	for i := 0; i < maxSessions+10; i++ {
		c.newSession(httptest.NewRecorder(), req, "vic", false, now.Add(time.Duration(i+1)*time.Millisecond))
	}
	olga := 0
	for _, s := range c.sessions {
		if s.user == "olga" {
			olga++
		}
	}
	if olga != 1 {
		t.Fatalf("olga's session was pushed out by vic's logins (%d sessions held)", len(c.sessions))
	}
}

// TestRedteamLoginSuccessKeepsAddressCount: an insider's own successful
// login does not wipe the failures its address ran up guessing other
// accounts' passwords (else it could spray without limit, logging itself
// in between).
func TestRedteamLoginSuccessKeepsAddressCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	pw, err := AddUser(path, "mallory", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	c := &Console{cfg: Config{Now: time.Now, LoginFailures: DefaultLoginFailures, LoginWindow: DefaultLoginWindow, SessionTTL: DefaultSessionTTL, IdleTimeout: DefaultIdleTimeout},
		users: &users{path: path}, hashes: make(chan struct{}, 2),
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}}
	try := func(user, password string) int {
		req := httptest.NewRequest("POST", "/console/api/login", strings.NewReader(`{"user":"`+user+`","password":"`+password+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		c.login(rec, req)
		return rec.Code
	}
	for _, victim := range []string{"alice", "bob", "carol", "dave"} {
		try(victim, "Summer2026!")
	}
	if code := try("mallory", pw); code != http.StatusOK {
		t.Fatalf("mallory's own login: %d", code)
	}
	try("erin", "Summer2026!")
	if code := try("frank", "Summer2026!"); code != http.StatusTooManyRequests {
		t.Fatalf("sixth guess from the address, after an own login in between: %d", code)
	}
	// The account that logged in keeps no failures of its own.
	if n := len(c.failures["user:mallory"]); n != 0 {
		t.Fatalf("mallory has %d failures after logging in", n)
	}
}
