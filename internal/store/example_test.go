package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ward-dev/ward/internal/store"
)

// A sponsor's agent delegates to a sub-agent; ending the root session ends
// the whole tree in one step.
func Example() {
	dir, err := os.MkdirTemp("", "ward-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, store.Config{Path: filepath.Join(dir, "ward.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	must(s.CreatePrincipal(ctx, store.Principal{Name: "alice", Kind: store.KindSponsor}))
	// Only the hash of alice's API key is stored.
	must(s.AddCredential(ctx, "alice", "key-1", sha256.Sum256([]byte("alice's secret"))))
	must(s.CreateAgent(ctx, store.Agent{Name: "reporter", Sponsor: "alice"}))

	p, id, err := s.LookupCredential(ctx, sha256.Sum256([]byte("alice's secret")))
	must(err)
	fmt.Println("authenticated", p.Name, "with", id)

	exp := time.Now().Add(time.Hour)
	must(s.CreateSession(ctx, store.Session{ID: "s1", Agent: "reporter", Objective: "Q3 report", Expires: exp}))
	must(s.CreateSession(ctx, store.Session{ID: "s2", Agent: "reporter", ParentID: "s1", Expires: exp}))
	must(s.CreateSession(ctx, store.Session{ID: "s3", Agent: "reporter", ParentID: "s2", Expires: exp}))

	ended, err := s.EndSession(ctx, "s1", "task done", time.Now())
	must(err)
	fmt.Println("ended", ended)

	err = s.CreateSession(ctx, store.Session{ID: "s4", Agent: "reporter", ParentID: "s2", Expires: exp})
	fmt.Println(err)
	// Output:
	// authenticated alice with key-1
	// ended [s1 s2 s3]
	// create session "s4": parent session "s2" has ended: conflict with current state
}
