package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, in order: migration i makes
// version i+1. A migration once released is never changed, only
// followed by another.
var migrations = []string{
	// 1: events once per device, log and sequence; each log's last
	// sequence; the texts and their claims; rosters; gaps; binding jobs.
	`CREATE TABLE logs (
		device text NOT NULL,
		log    text NOT NULL,
		centre text NOT NULL,
		last   bigint NOT NULL,
		PRIMARY KEY (device, log)
	);
	CREATE TABLE events (
		centre text NOT NULL,
		device text NOT NULL,
		log    text NOT NULL,
		seq    bigint NOT NULL,
		body   jsonb NOT NULL,
		PRIMARY KEY (device, log, seq),
		FOREIGN KEY (device, log) REFERENCES logs (device, log)
	);
	CREATE INDEX events_by_centre ON events (centre, device, log, seq);
	CREATE SEQUENCE texts_done_order;
	CREATE TABLE texts (
		q           bigserial PRIMARY KEY,
		id          text NOT NULL UNIQUE,
		state       text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'held')),
		next_at     timestamptz NOT NULL,
		created     timestamptz NOT NULL,
		attempts    integer NOT NULL,
		claimed_by  text,
		claim_until timestamptz,
		claimed_at  timestamptz,
		done        boolean NOT NULL DEFAULT false,
		done_order  bigint,
		body        jsonb NOT NULL,
		CHECK (state <> 'sending' OR (claimed_by IS NOT NULL AND claim_until IS NOT NULL)),
		CHECK (done = (state IN ('sent', 'failed', 'held')))
	);
	CREATE INDEX texts_to_do ON texts (q) WHERE NOT done;
	CREATE INDEX texts_done ON texts (done_order) WHERE done;
	CREATE TABLE rosters (
		centre   text PRIMARY KEY,
		revision bigint NOT NULL,
		body     jsonb NOT NULL
	);
	CREATE TABLE gaps (
		device   text NOT NULL,
		log      text NOT NULL,
		from_seq bigint NOT NULL,
		centre   text NOT NULL,
		body     jsonb NOT NULL,
		PRIMARY KEY (device, log, from_seq)
	);
	CREATE TABLE binding_jobs (
		q   bigserial PRIMARY KEY,
		job json NOT NULL -- opaque to the store: kept as written
	);`,
	// 2: the card registry: the binder's tables of keyed values (opaque
	// to the store) and their counters.
	`CREATE TABLE registry (
		tbl text NOT NULL,
		k   bytea NOT NULL,
		v   bytea NOT NULL,
		PRIMARY KEY (tbl, k)
	);
	CREATE TABLE registry_seq (
		tbl text PRIMARY KEY,
		n   bigint NOT NULL CHECK (n >= 0)
	);
	CREATE INDEX logs_by_centre ON logs (centre, device);`,
	// 3: less work per event stored, the ingest's cost. Events keep their
	// primary key (one per device, log and sequence); their log's row is
	// made and locked in the same transaction (Put), so the foreign key's
	// check per event, a query each, holds nothing Put does not. A
	// centre's events are found through its logs (logs_by_centre) and
	// the primary key, not an index of their own. Texts are kept by their
	// ID (the idempotency key) alone: their place (q) orders them through
	// the queue's partial index and needs no index of its own. Bodies are
	// json, kept as written, not parsed into jsonb: the store never looks
	// inside them.
	`ALTER TABLE events DROP CONSTRAINT events_device_log_fkey;
	DROP INDEX events_by_centre;
	ALTER TABLE texts DROP CONSTRAINT texts_pkey, DROP CONSTRAINT texts_id_key, ADD PRIMARY KEY (id);
	ALTER TABLE texts ALTER COLUMN body TYPE json;
	ALTER TABLE events ALTER COLUMN body TYPE json;`,
	// 4: a flush's texts are written as one row, in the events'
	// transaction, and made one row each (texts) by the texter before it
	// claims: storing and acknowledging a burst of events does not wait on
	// a row and its indexes per text.
	`CREATE TABLE text_batches (
		q    bigserial PRIMARY KEY,
		jobs json NOT NULL
	);`,
	// 5: a centre's texts of a day found without reading all (the staff
	// page's 오늘 and 문자): their centre and tap time kept beside the
	// body, indexed. Written by the texter's spread, not by Put: the
	// ingest does not pay for it.
	`ALTER TABLE texts ADD COLUMN centre text, ADD COLUMN at timestamptz;
	UPDATE texts SET centre = body->>'centre', at = (body->>'at')::timestamptz;
	ALTER TABLE texts ALTER COLUMN centre SET NOT NULL, ALTER COLUMN at SET NOT NULL;
	CREATE INDEX texts_by_centre ON texts (centre, at);`,
}

// lockID keys the advisory lock migrations run under (any constant the
// database's other users do not take).
const lockID = 0x6b69756d // "kium"

// migrate applies the migrations the database lacks, each in its own
// transaction, under an advisory lock: instances starting together apply
// each once, and one that finds a newer schema than it knows refuses to
// run on it.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: connecting: %w (check the database URL, that PostgreSQL runs and takes connections from this host)", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockID); err != nil {
		return fmt.Errorf("pgstore: waiting for the schema's lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, lockID)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("pgstore: the schema's version table: %w (does the database user have CREATE on the database?)", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("pgstore: reading the schema's version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("pgstore: the database's schema is version %d, newer than this kiumbridge knows (%d): upgrade kiumbridge", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migrating the schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

// Version is the schema version this package makes.
func Version() int { return len(migrations) }
