package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Tiles of the nodes' audit logs.
//
// Each node of several keeps here, beside its head (auditheads.go), the
// tiles of its log's Merkle tree in the C2SP tlog-tiles layout
// (golang.org/x/mod/sumdb/tlog, height 8): every hash of the tree, 256 to
// a tile, written before the head that covers them. With them and the
// entries of the audit index (AuditRow.Entry), any other node proves any
// indexed event in the node's log against the node's signed head
// (tlog.TileHashReader checks every tile it reads against the head's
// root), so it can answer an audit search for the whole system from the
// store without trusting it: a row or a tile altered there does not
// prove. A tile is kept at its widest: a partial tile of a smaller tree
// is a prefix of it.

// TileHeight is the height of the tiles kept (tlog's, and Go's checksum
// database's).
const TileHeight = 8

// maxTileBytes is a full tile's size: 2^TileHeight hashes.
const maxTileBytes = 32 << TileHeight

// Tile names one tile of a node's log: level L, number N (tlog.Tile's L
// and N; its width is its data's length / 32).
type Tile struct {
	Level int
	N     int64
}

// PutAuditTiles keeps tiles of node's log: data by tile, each 32 bytes a
// hash, a whole number of hashes. A tile kept wider is left as it is.
func (s *Store) PutAuditTiles(ctx context.Context, node string, tiles map[Tile][]byte) error {
	if err := checkName("node", node); err != nil {
		return fmt.Errorf("put audit tiles: %w", err)
	}
	for t, data := range tiles {
		if t.Level < 0 || t.N < 0 || len(data) == 0 || len(data)%32 != 0 || len(data) > maxTileBytes {
			return fmt.Errorf("put audit tiles of %s: tile %d/%d of %d bytes", node, t.Level, t.N, len(data))
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.write(ctx, func(tx *sql.Tx) error {
		for t, data := range tiles {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_tiles (node, level, n, data) VALUES ($1, $2, $3, $4)
				ON CONFLICT (node, level, n) DO UPDATE SET data = excluded.data WHERE length(excluded.data) > length(audit_tiles.data)`,
				node, t.Level, t.N, data); err != nil {
				return fmt.Errorf("put audit tile %d/%d of %s: %w", t.Level, t.N, node, err)
			}
		}
		return nil
	})
}

// GetAuditTile returns the widest data kept of node's tile t, or nil.
func (s *Store) GetAuditTile(ctx context.Context, node string, t Tile) ([]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM audit_tiles WHERE node = $1 AND level = $2 AND n = $3`, node, t.Level, t.N).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit tile %d/%d of %s: %w", t.Level, t.N, node, err)
	}
	if len(data) > maxTileBytes {
		return nil, fmt.Errorf("audit tile %d/%d of %s: %d bytes", t.Level, t.N, node, len(data))
	}
	return data, nil
}

// auditIndexEntry is migration 14's change to the audit index (both
// databases), and part of the index's schema when it is reset.
var auditIndexEntry = []string{
	`ALTER TABLE audit_index ADD COLUMN entry TEXT NOT NULL DEFAULT ''`,
}

// sqliteTilesSchema is the rest of migration 14 on SQLite.
var sqliteTilesSchema = []string{
	`CREATE TABLE audit_tiles (
		node  TEXT NOT NULL,
		level INTEGER NOT NULL CHECK (level >= 0),
		n     INTEGER NOT NULL CHECK (n >= 0),
		data  BLOB NOT NULL,
		PRIMARY KEY (node, level, n)
	) STRICT`,
}

// postgresTilesSchema is the rest of migration 14 on PostgreSQL.
var postgresTilesSchema = []string{
	`CREATE TABLE audit_tiles (
		node  TEXT COLLATE "C" NOT NULL,
		level INTEGER NOT NULL CHECK (level >= 0),
		n     BIGINT NOT NULL CHECK (n >= 0),
		data  BYTEA NOT NULL,
		PRIMARY KEY (node, level, n)
	)`,
}

// AuditTiled returns how many of node's log entries its level-0 tiles
// cover (a node keeps its tiles in order, every level of a step in one
// write: this is how far it kept them).
func (s *Store) AuditTiled(ctx context.Context, node string) (uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int64
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT n, data FROM audit_tiles WHERE node = $1 AND level = 0 ORDER BY n DESC LIMIT 1`, node).Scan(&n, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit tiles of %s: %w", node, err)
	}
	return uint64(n)<<TileHeight + uint64(len(data)/32), nil
}
