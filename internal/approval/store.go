package approval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

// Store persists requests. A Store belongs to one Queue, its only writer,
// which serialises its calls; an implementation therefore needs no
// transactions across calls, but must be safe for concurrent use so that
// other readers (a console, a CLI) can share it.
//
// Implementations must copy: a Request passed to Put or returned from Get
// and List shares no memory (slices, Arguments) with the stored one.
type Store interface {
	// Put inserts r, or replaces the request with r.ID. It either stores r
	// completely or returns an error and changes nothing.
	Put(ctx context.Context, r Request) error
	// Get returns the request with id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Request, error)
	// List returns the requests matching every non-empty field of f,
	// ordered by Created and then ID.
	List(ctx context.Context, f Filter) ([]Request, error)
}

// Filter selects requests. Empty fields match everything.
type Filter struct {
	State   string // one of the State constants
	Session string
	Sponsor string
	// CallHash selects the requests for one exact call (see CallHash).
	CallHash string
}

func (f Filter) match(r *Request) bool {
	return (f.State == "" || f.State == r.State) &&
		(f.Session == "" || f.Session == r.Session) &&
		(f.Sponsor == "" || f.Sponsor == r.Sponsor) &&
		(f.CallHash == "" || f.CallHash == r.CallHash)
}

// MemoryStore is a Store in memory, indexed by ID and by session. Its zero
// value is not usable; call NewMemoryStore.
type MemoryStore struct {
	mu        sync.RWMutex
	byID      map[string]*Request
	bySession map[string][]string // session → IDs, in insertion order
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byID: map[string]*Request{}, bySession: map[string][]string{}}
}

// Put implements Store.
func (s *MemoryStore) Put(ctx context.Context, r Request) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	if r.ID == "" {
		return fmt.Errorf("put request: empty id: %w", ErrInvalid)
	}
	c := r.clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[r.ID]
	if ok && old.Session != r.Session {
		return fmt.Errorf("put request %s: session cannot change: %w", r.ID, ErrInvalid)
	}
	if !ok {
		s.bySession[r.Session] = append(s.bySession[r.Session], r.ID)
	}
	s.byID[r.ID] = &c
	return nil
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, id string) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, fmt.Errorf("get request %s: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.byID[id]
	if !ok {
		return Request{}, fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	return r.clone(), nil
}

// List implements Store. With f.Session set it reads only that session's
// requests.
func (s *MemoryStore) List(ctx context.Context, f Filter) ([]Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Request
	add := func(r *Request) {
		if f.match(r) {
			out = append(out, r.clone())
		}
	}
	if f.Session != "" {
		for _, id := range s.bySession[f.Session] {
			add(s.byID[id])
		}
	} else {
		for _, r := range s.byID {
			add(r)
		}
	}
	slices.SortFunc(out, func(a, b Request) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
