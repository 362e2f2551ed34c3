package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNodeClaimed is returned by [Store.ClaimNode] and [NodeClaim.Check]
// when another running process holds the node's id: a copy of a node's
// data directory started beside it (a node must refuse to serve, or stop).
var ErrNodeClaimed = errors.New("the node id is held by another running ward process")

// NodeClaim is a running node's hold on its id in a shared PostgreSQL
// store: a session-level advisory lock on a connection of its own, which
// PostgreSQL releases when the connection ends (the process exits, is
// killed, or loses the network). Its connection is named
// "ward-node NODE INSTANCE", INSTANCE random per claim, so that a node
// reconnecting after a network cut can tell its own stale connection
// (which it ends) from another process's (a clone: ErrNodeClaimed).
type NodeClaim struct {
	s        *Store
	node     string
	instance string

	mu   sync.Mutex
	conn *pgx.Conn
}

// ClaimNode claims node's id for this process: ErrNodeClaimed if another
// running process holds it.
func (s *Store) ClaimNode(ctx context.Context, node string) (*NodeClaim, error) {
	if !s.pg || s.pgcfg == nil {
		return nil, errors.New("claim node: only a PostgreSQL store is shared by nodes")
	}
	if !nodeName.MatchString(node) {
		return nil, fmt.Errorf("claim node: %q is not a node name", node)
	}
	var r [8]byte
	rand.Read(r[:])
	c := &NodeClaim{s: s, node: node, instance: hex.EncodeToString(r[:])}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.take(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NodeLockKey is the advisory lock key of node's claim in schema, as
// pg_locks shows it (classid the high 32 bits, objid the low).
func NodeLockKey(schema, node string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ward/store/node/" + schema + "/" + node))
	return int64(h.Sum64())
}

// claimAttempts bounds how often take ends its own stale connection and
// tries again (PostgreSQL ends a terminated backend asynchronously).
const claimAttempts = 20

// take connects and takes the lock; c.mu is held.
func (c *NodeClaim) take(ctx context.Context) error {
	ctx, cancel := c.s.op(ctx)
	defer cancel()
	cfg := c.s.pgcfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "ward-node " + c.node + " " + c.instance
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("claim node %s: connect: %w", c.node, err)
	}
	key := NodeLockKey(c.s.schema, c.node)
	for attempt := 0; ; attempt++ {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			conn.Close(context.Background())
			return fmt.Errorf("claim node %s: %w", c.node, err)
		}
		if ok {
			c.conn = conn
			return nil
		}
		// Held: by this claim's own connection from before a cut (end
		// it), or by another process.
		var pid int32
		var app string
		err := conn.QueryRow(ctx, `SELECT a.pid, coalesce(a.application_name, '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 LIMIT 1`,
			int64(uint64(key)>>32), int64(uint64(key)&0xffffffff)).Scan(&pid, &app)
		if errors.Is(err, pgx.ErrNoRows) && attempt < claimAttempts {
			continue // released meanwhile
		}
		if err != nil {
			conn.Close(context.Background())
			return fmt.Errorf("claim node %s: who holds it: %w", c.node, err)
		}
		if app != "ward-node "+c.node+" "+c.instance {
			conn.Close(context.Background())
			holder := "another process"
			if f := strings.Fields(app); len(f) == 3 && f[0] == "ward-node" {
				holder = "instance " + f[2]
			}
			return fmt.Errorf("%w: node %s is running elsewhere (%s, PostgreSQL backend %d)", ErrNodeClaimed, c.node, holder, pid)
		}
		if attempt == claimAttempts {
			conn.Close(context.Background())
			return fmt.Errorf("claim node %s: its earlier connection (backend %d) does not end", c.node, pid)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			conn.Close(context.Background())
			return fmt.Errorf("claim node %s: ending its earlier connection: %w", c.node, err)
		}
		select {
		case <-ctx.Done():
			conn.Close(context.Background())
			return fmt.Errorf("claim node %s: %w", c.node, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Check confirms the claim still holds: its connection answers, or a new
// connection takes the lock again. ErrNodeClaimed means another process
// took it meanwhile; any other error that the database could not be
// reached (try again).
func (c *NodeClaim) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		pctx, cancel := c.s.op(ctx)
		err := c.conn.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		c.conn.Close(context.Background())
		c.conn = nil
	}
	return c.take(ctx)
}

// Close releases the claim.
func (c *NodeClaim) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.conn.Close(ctx)
	c.conn = nil
	return err
}
