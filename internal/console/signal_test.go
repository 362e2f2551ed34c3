package console_test

import (
	"testing"

	"github.com/ward-dev/ward/internal/console"
)

// TestSignal: a channel from Wait is closed by the next Notify, and only
// by a Notify after it.
func TestSignal(t *testing.T) {
	var s console.Signal
	s.Notify() // nobody waits: nothing to wake, nothing kept
	w := s.Wait()
	select {
	case <-w:
		t.Fatal("a Notify before Wait woke it")
	default:
	}
	if s.Wait() != w {
		t.Fatal("two waiters before a Notify got different channels")
	}
	s.Notify()
	select {
	case <-w:
	default:
		t.Fatal("Notify did not wake the waiter")
	}
	select {
	case <-s.Wait():
		t.Fatal("a Wait after the Notify is already woken")
	default:
	}
}

// BenchmarkSignalNotify is what each audit append pays for the live
// streams when nobody watches.
func BenchmarkSignalNotify(b *testing.B) {
	var s console.Signal
	for b.Loop() {
		s.Notify()
	}
}

// BenchmarkSignalNotifyWatched is its cost with a stream waiting.
func BenchmarkSignalNotifyWatched(b *testing.B) {
	var s console.Signal
	for b.Loop() {
		s.Wait()
		s.Notify()
	}
}
