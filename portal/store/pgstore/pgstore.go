// Package pgstore keeps the portal's storage contract (package store) on
// PostgreSQL, through pgx: any number of kiumbridge processes, on any
// number of hosts, share one database. Every invariant is the database's:
//
//   - one event per device, log and sequence (the primary key), each log in
//     order without a hole: a Put locks its logs' rows (SELECT … FOR
//     UPDATE) and stores what follows their last sequence, in one
//     transaction with the texts and binding jobs the events bring;
//   - one text per event and guardian (a unique ID, inserted once);
//   - one claim per text at a time: claims are taken with SELECT … FOR
//     UPDATE SKIP LOCKED and recorded with their owner and lease, so a
//     claim whose owner died lapses and the text is claimed again with
//     the same ID as idempotency key;
//   - one roster per revision number: Publish is a conditional upsert.
//
// The schema is versioned: Open applies the migrations not yet applied,
// in order, under an advisory lock, so instances started together apply
// each once.
package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Store is the contract on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// locks queue this process's waiters for each named lock (Lock).
	mu    sync.Mutex
	locks map[string]chan struct{}
	// texts is a pool for the text queue's claims and outcomes, whose
	// commits do not wait for the disk (synchronous_commit off): a crash
	// of PostgreSQL itself (not of a bridge) may forget the last fraction
	// of a second of them, and those texts go again, with the same
	// idempotency keys, as texts in flight at a bridge's crash do. Events
	// are stored on pool, every commit on disk before its ack.
	texts *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a PostgreSQL URL or key=value
// string, as pgx takes it) and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: the database URL: %w (want postgres://user:password@host:5432/db)", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	tcfg := cfg.Copy()
	tcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	tcfg.MaxConns = 4
	texts, err := pgxpool.NewWithConfig(ctx, tcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connecting to %s: %w", cfg.ConnConfig.Host, err)
	}
	return &Store{pool: pool, texts: texts}, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.texts.Close()
	s.pool.Close()
	return nil
}

// Ping returns once the database answers, or ctx's error.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: the database does not answer: %w", err)
	}
	return nil
}

// tx runs fn in a transaction, committed if fn returns nil. A
// serialization failure or deadlock (another instance's transaction on the
// same rows) is retried a few times.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.txOn(ctx, s.pool, fn)
}

// txOn is tx on one of the pools.
func (s *Store) txOn(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, pool, fn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") && attempt < 5 {
			continue
		}
		return err
	}
}

// Last implements store.Events.
func (s *Store) Last(ctx context.Context, device, log string) (uint64, error) {
	var last int64
	err := s.pool.QueryRow(ctx, `SELECT last FROM logs WHERE device = $1 AND log = $2`, device, log).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: the last sequence of %s/%s: %w", device, log, err)
	}
	return uint64(last), nil
}

type logKey struct{ device, log string }

// Put implements store.Events.
func (s *Store) Put(ctx context.Context, evs []protocol.Event, plan store.Plan) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	var n int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		// Lock the logs' rows, in a fixed order so that two instances
		// never wait on each other in a circle.
		keys := map[logKey]string{}
		for i := range evs {
			keys[logKey{evs[i].Device, evs[i].Log}] = evs[i].Centre
		}
		order := make([]logKey, 0, len(keys))
		for k := range keys {
			order = append(order, k)
		}
		slices.SortFunc(order, func(a, b logKey) int {
			return strings.Compare(a.device+"\x00"+a.log, b.device+"\x00"+b.log)
		})
		// Two statements lock every log of the call, whatever their number:
		// the rows made if new, then read FOR UPDATE in that order.
		devs, logs, centres := make([]string, len(order)), make([]string, len(order)), make([]string, len(order))
		for i, k := range order {
			devs[i], logs[i], centres[i] = k.device, k.log, keys[k]
		}
		if _, err := tx.Exec(ctx, `INSERT INTO logs (device, log, centre, last)
			SELECT d, l, c, 0 FROM unnest($1::text[], $2::text[], $3::text[]) AS t (d, l, c)
			ON CONFLICT DO NOTHING`, devs, logs, centres); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT logs.device, logs.log, logs.last FROM logs
			JOIN unnest($1::text[], $2::text[]) AS t (d, l) ON logs.device = t.d AND logs.log = t.l
			ORDER BY logs.device, logs.log FOR UPDATE OF logs`, devs, logs)
		if err != nil {
			return err
		}
		last := map[logKey]uint64{}
		for rows.Next() {
			var k logKey
			var l int64
			if err := rows.Scan(&k.device, &k.log, &l); err != nil {
				rows.Close()
				return err
			}
			last[k] = uint64(l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// The rows to write, as arrays: one statement per table.
		var ev struct {
			centre, device, log []string
			seq                 []int64
			body                [][]byte
		}
		var texts []store.Job
		var bindings [][]byte
		for i := range evs {
			e := &evs[i]
			k := logKey{e.Device, e.Log}
			switch {
			case e.Seq <= last[k]:
				continue // stored already: by another instance, or before a crash
			case e.Seq != last[k]+1:
				return fmt.Errorf("event %s does not follow %d: %w", e.ID, last[k], store.ErrNotNext)
			}
			last[k] = e.Seq
			n++
			if e.Outcome == protocol.OutcomeCardBound {
				if plan.Binding != nil {
					if job := plan.Binding(e); job != nil {
						bindings = append(bindings, job)
					}
				}
				c := *e
				c.UID = "" // raw UIDs are not kept: the registry knows the card by its HMAC
				e = &c
			}
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			ev.centre, ev.device, ev.log = append(ev.centre, e.Centre), append(ev.device, e.Device), append(ev.log, e.Log)
			ev.seq, ev.body = append(ev.seq, int64(e.Seq)), append(ev.body, raw)
			if plan.Texts == nil {
				continue
			}
			texts = append(texts, plan.Texts(e)...)
		}
		if n == 0 {
			return nil
		}
		b := &pgx.Batch{}
		for _, job := range bindings { // in the events' order: the binder applies them so
			b.Queue(`INSERT INTO binding_jobs (job) VALUES ($1)`, job)
		}
		b.Queue(`INSERT INTO events (centre, device, log, seq, body)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::json[])`,
			ev.centre, ev.device, ev.log, ev.seq, ev.body)
		if len(texts) > 0 {
			// One row for the call's texts, in the events' order; the
			// texter makes them a row each before it claims (spread).
			raw, err := json.Marshal(texts)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO text_batches (jobs) VALUES ($1)`, raw)
		}
		lasts := make([]int64, len(order))
		for i, k := range order {
			lasts[i] = int64(last[k])
		}
		b.Queue(`UPDATE logs SET last = t.s FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t (d, l, s)
			WHERE logs.device = t.d AND logs.log = t.l`, devs, logs, lasts)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		if errors.Is(err, store.ErrNotNext) {
			return 0, err
		}
		return 0, fmt.Errorf("pgstore: storing %d events: %w", len(evs), err)
	}
	return n, nil
}

// Events implements store.Events. Rows are read in pages, so a centre's
// history of years is never held whole.
func (s *Store) Events(ctx context.Context, centre string, fn func(protocol.Event) bool) error {
	const page = 1000
	after := []any{"", "", "", int64(0)}
	for {
		rows, err := s.pool.Query(ctx, `SELECT l.centre, e.device, e.log, e.seq, e.body FROM logs l
			JOIN events e ON e.device = l.device AND e.log = l.log
			WHERE ($1 = '' OR l.centre = $1) AND (l.centre, e.device, e.log, e.seq) > ($2, $3, $4, $5)
			ORDER BY l.centre, e.device, e.log, e.seq LIMIT $6`, centre, after[0], after[1], after[2], after[3], page)
		if err != nil {
			return fmt.Errorf("pgstore: reading events: %w", err)
		}
		var evs []protocol.Event
		for rows.Next() {
			var c, d, l string
			var seq int64
			var raw []byte
			if err := rows.Scan(&c, &d, &l, &seq, &raw); err != nil {
				rows.Close()
				return err
			}
			var e protocol.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				rows.Close()
				return fmt.Errorf("pgstore: stored event %s/%s/%d: %w", d, l, seq, err)
			}
			evs = append(evs, e)
			after = []any{c, d, l, seq}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgstore: reading events: %w", err)
		}
		for _, e := range evs {
			if !fn(e) {
				return nil
			}
		}
		if len(evs) < page {
			return nil
		}
	}
}

// EventsAfter implements store.Events: the centre's logs (logs_by_centre),
// then the new events of each log that has some, by its primary key.
func (s *Store) EventsAfter(ctx context.Context, centre string, after map[store.LogID]uint64, fn func(protocol.Event) bool) error {
	rows, err := s.pool.Query(ctx, `SELECT device, log, last FROM logs WHERE centre = $1 ORDER BY device, log`, centre)
	if err != nil {
		return fmt.Errorf("pgstore: reading a centre's logs: %w", err)
	}
	type newer struct {
		id   store.LogID
		from int64
	}
	var logs []newer
	for rows.Next() {
		var id store.LogID
		var last int64
		if err := rows.Scan(&id.Device, &id.Log, &last); err != nil {
			rows.Close()
			return fmt.Errorf("pgstore: reading a centre's logs: %w", err)
		}
		if from := int64(after[id]); last > from {
			logs = append(logs, newer{id, from})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: reading a centre's logs: %w", err)
	}
	for _, l := range logs {
		rows, err := s.pool.Query(ctx, `SELECT seq, body FROM events WHERE device = $1 AND log = $2 AND seq > $3 ORDER BY seq`, l.id.Device, l.id.Log, l.from)
		if err != nil {
			return fmt.Errorf("pgstore: reading events: %w", err)
		}
		var evs []protocol.Event
		for rows.Next() {
			var seq int64
			var raw []byte
			if err := rows.Scan(&seq, &raw); err != nil {
				rows.Close()
				return fmt.Errorf("pgstore: reading events: %w", err)
			}
			var e protocol.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				rows.Close()
				return fmt.Errorf("pgstore: stored event %s/%s/%d: %w", l.id.Device, l.id.Log, seq, err)
			}
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgstore: reading events: %w", err)
		}
		for _, e := range evs {
			if !fn(e) {
				return nil
			}
		}
	}
	return nil
}

// Centres implements store.Events.
func (s *Store) Centres(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT centre FROM logs WHERE last > 0 ORDER BY centre`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: the centres: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: the centres: %w", err)
	}
	return out, nil
}

// jobColumns are read with every text: the job as queued, and what
// changes of it as it goes.
const jobColumns = `q, body, state, next_at, attempts, claimed_at`

func scanJob(row pgx.Row) (store.Job, error) {
	var j store.Job
	var q int64
	var raw []byte
	var claimed *time.Time
	if err := row.Scan(&q, &raw, &j.State, &j.NextAt, &j.Attempts, &claimed); err != nil {
		return j, err
	}
	state, next, attempts := j.State, j.NextAt, j.Attempts
	if err := json.Unmarshal(raw, &j); err != nil {
		return j, fmt.Errorf("pgstore: stored text %d: %w", q, err)
	}
	j.Q, j.State, j.NextAt, j.Attempts = uint64(q), state, next, attempts
	if claimed != nil {
		j.ClaimedAt = *claimed
	}
	return j, nil
}

func collectJobs(rows pgx.Rows) ([]store.Job, error) {
	defer rows.Close()
	var out []store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// spreadLockID keys the transaction-scoped advisory lock one spread
// holds: batches become rows in the order they were stored.
const spreadLockID = 0x6b69756d03

// spread makes the queued batches of texts (text_batches, one per call of
// Put) a row each in texts, in the order they were stored, each batch
// once: deleted in the transaction that writes its rows. It spreads the
// first batches that hold at least want texts (0: every batch) and
// reports whether it spread any. While another instance spreads, it
// leaves them to it.
func (s *Store) spread(ctx context.Context, want int) (bool, error) {
	spread := false
	err := s.txOn(ctx, s.texts, func(tx pgx.Tx) error {
		spread = false
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(spreadLockID)).Scan(&got); err != nil || !got {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT q, jobs, json_array_length(jobs) FROM text_batches ORDER BY q LIMIT 256`)
		if err != nil {
			return err
		}
		type batch struct {
			q    int64
			jobs []byte
		}
		var batches []batch
		var qs []int64
		texts := 0
		for rows.Next() && (want <= 0 || texts < want) {
			var b batch
			var n int
			if err := rows.Scan(&b.q, &b.jobs, &n); err != nil {
				rows.Close()
				return err
			}
			batches, qs, texts = append(batches, b), append(qs, b.q), texts+n
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(batches) == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM text_batches WHERE q = ANY($1)`, qs); err != nil {
			return err
		}
		slices.SortFunc(batches, func(a, b batch) int { return cmp.Compare(a.q, b.q) })
		var id, state, centre []string
		var nextAt, created, at []time.Time
		var attempts []int32
		var body [][]byte
		for _, b := range batches {
			var jobs []json.RawMessage
			if err := json.Unmarshal(b.jobs, &jobs); err != nil {
				return fmt.Errorf("stored batch of texts %d: %w", b.q, err)
			}
			for _, raw := range jobs {
				var j store.Job
				if err := json.Unmarshal(raw, &j); err != nil {
					return fmt.Errorf("stored batch of texts %d: %w", b.q, err)
				}
				id, state = append(id, j.ID), append(state, j.State)
				nextAt, created = append(nextAt, j.NextAt), append(created, j.Created)
				attempts, body = append(attempts, int32(j.Attempts)), append(body, raw)
				centre, at = append(centre, j.Centre), append(at, j.At)
			}
		}
		// In the order stored: a text's place in the queue (q) is the
		// order it was queued in.
		_, err = tx.Exec(ctx, `INSERT INTO texts (id, state, next_at, created, attempts, body, centre, at)
			SELECT i, s, n, c, a, b, ce, t FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::integer[], $6::json[], $7::text[], $8::timestamptz[])
				WITH ORDINALITY AS t (i, s, n, c, a, b, ce, t, o)
			ORDER BY o ON CONFLICT (id) DO NOTHING`, id, state, nextAt, created, attempts, body, centre, at)
		spread = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: queueing the texts stored with events: %w", err)
	}
	return spread, nil
}

// spreadAll spreads every batch (unless another instance is spreading
// them now): what the views of the queue read first.
func (s *Store) spreadAll(ctx context.Context) error {
	for {
		if spread, err := s.spread(ctx, 0); err != nil || !spread {
			return err
		}
	}
}

// Claim implements store.TextQueue.
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, n int, lease time.Duration) ([]store.Job, error) {
	if lease <= 0 {
		return nil, errors.New("pgstore: a claim needs a lease")
	}
	if n <= 0 {
		return nil, nil
	}
	// The texts of batches not spread yet are spread only when those
	// spread already do not fill the claim: in a burst, storing the events
	// goes first, and the texts follow as the texter takes them.
	out, err := s.claim(ctx, owner, now, n, lease)
	if err != nil || len(out) == n {
		return out, err
	}
	if spread, err := s.spread(ctx, n-len(out)); err != nil || !spread {
		return out, err
	}
	more, err := s.claim(ctx, owner, now, n-len(out), lease)
	out = append(out, more...)
	slices.SortFunc(out, func(a, b store.Job) int { return cmp.Compare(a.Q, b.Q) })
	return out, err
}

// claim claims up to n of the texts spread.
func (s *Store) claim(ctx context.Context, owner string, now time.Time, n int, lease time.Duration) ([]store.Job, error) {
	rows, err := s.texts.Query(ctx, `WITH due AS (
			SELECT id FROM texts
			WHERE NOT done AND ((state = 'pending' AND next_at <= $3) OR (state = 'sending' AND claim_until <= $3))
			ORDER BY q LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE texts t SET state = 'sending', claimed_by = $1, claim_until = $2, claimed_at = $3, attempts = t.attempts + 1
		FROM due WHERE t.id = due.id
		RETURNING t.`+strings.ReplaceAll(jobColumns, ", ", ", t."), owner, now.Add(lease), now, n)
	if err != nil {
		return nil, fmt.Errorf("pgstore: claiming texts: %w", err)
	}
	out, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("pgstore: claiming texts: %w", err)
	}
	slices.SortFunc(out, func(a, b store.Job) int { return cmp.Compare(a.Q, b.Q) })
	return out, nil
}

// Release implements store.TextQueue.
func (s *Store) Release(ctx context.Context, owner string, jobs ...store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	_, err := s.texts.Exec(ctx, `UPDATE texts SET state = 'pending', claimed_by = NULL, claim_until = NULL, claimed_at = NULL, attempts = attempts - 1
		WHERE id = ANY($1) AND state = 'sending' AND claimed_by = $2`, ids, owner)
	if err != nil {
		return fmt.Errorf("pgstore: releasing %d texts: %w", len(jobs), err)
	}
	return nil
}

func done(state string) bool {
	return state == store.JobSent || state == store.JobFailed || state == store.JobHeld
}

// Finish implements store.TextQueue.
func (s *Store) Finish(ctx context.Context, owner string, jobs ...store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	err := s.txOn(ctx, s.texts, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, j := range jobs {
			if j.State == store.JobSending {
				j.State = store.JobPending
			}
			raw, err := json.Marshal(j)
			if err != nil {
				return err
			}
			if done(j.State) {
				b.Queue(`UPDATE texts SET state = $2, next_at = $3, attempts = $4, body = $5, claimed_by = NULL, claim_until = NULL,
					done = true, done_order = nextval('texts_done_order') WHERE id = $1`, j.ID, j.State, j.NextAt, j.Attempts, raw)
			} else {
				b.Queue(`UPDATE texts SET state = $2, next_at = $3, attempts = $4, body = $5, claimed_by = NULL, claim_until = NULL, claimed_at = NULL
					WHERE id = $1 AND NOT done`, j.ID, j.State, j.NextAt, j.Attempts, raw)
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("pgstore: recording %d texts' outcomes: %w", len(jobs), err)
	}
	return nil
}

// Queue implements store.TextQueue.
func (s *Store) Queue(ctx context.Context) (store.Queue, error) {
	var q store.Queue
	var oldest *time.Time
	if err := s.spreadAll(ctx); err != nil {
		return store.Queue{}, err
	}
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sending'), min(created)
		FROM texts WHERE NOT done`).Scan(&q.Pending, &q.Sending, &oldest)
	if err != nil {
		return store.Queue{}, fmt.Errorf("pgstore: reading the text queue: %w", err)
	}
	if oldest != nil {
		q.Oldest = *oldest
	}
	return q, nil
}

// Jobs implements store.TextQueue.
func (s *Store) Jobs(ctx context.Context, withDone bool, fn func(store.Job) bool) error {
	if err := s.spreadAll(ctx); err != nil {
		return err
	}
	queries := []string{`SELECT ` + jobColumns + ` FROM texts WHERE NOT done ORDER BY q`}
	if withDone {
		queries = append(queries, `SELECT `+jobColumns+` FROM texts WHERE done ORDER BY done_order`)
	}
	for _, query := range queries {
		if more, err := s.eachJob(ctx, fn, query); err != nil || !more {
			return err
		}
	}
	return nil
}

// eachJob calls fn for the texts query selects (jobColumns), in its
// order, until fn returns false (more is false then).
func (s *Store) eachJob(ctx context.Context, fn func(store.Job) bool, query string, args ...any) (more bool, err error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("pgstore: reading texts: %w", err)
	}
	js, err := collectJobs(rows)
	if err != nil {
		return false, fmt.Errorf("pgstore: reading texts: %w", err)
	}
	for _, j := range js {
		if !fn(j) {
			return false, nil
		}
	}
	return true, nil
}

// Enqueue implements store.TextQueue: rows of their own, each once by its
// ID (the primary key).
func (s *Store) Enqueue(ctx context.Context, jobs ...store.Job) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		for _, j := range jobs {
			j.State, j.Attempts = store.JobPending, 0
			raw, err := json.Marshal(j)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO texts (id, state, next_at, created, attempts, body, centre, at)
				VALUES ($1, 'pending', $2, $3, 0, $4, $5, $6) ON CONFLICT (id) DO NOTHING`, j.ID, j.NextAt, j.Created, raw, j.Centre, j.At)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: queueing texts: %w", err)
	}
	return n, nil
}

// CentreJobs implements store.TextQueue, through texts_by_centre.
func (s *Store) CentreJobs(ctx context.Context, centre string, since time.Time, fn func(store.Job) bool) error {
	if err := s.spreadAll(ctx); err != nil {
		return err
	}
	_, err := s.eachJob(ctx, fn, `SELECT `+jobColumns+` FROM texts WHERE centre = $1 AND at >= $2 ORDER BY at, q`, centre, since)
	return err
}

// Retry implements store.TextQueue.
func (s *Store) Retry(ctx context.Context, id, to string, now time.Time) error {
	if err := s.spreadAll(ctx); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM texts WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: no text %s", store.ErrNotRetriable, id)
		}
		if err != nil {
			return err
		}
		if j.State != store.JobFailed && j.State != store.JobHeld {
			return fmt.Errorf("%w: %s is %s", store.ErrNotRetriable, id, j.State)
		}
		j.State, j.To, j.NextAt, j.Attempts, j.Reason, j.Receipt, j.SentAt, j.ClaimedAt = store.JobPending, to, now, 0, "", "", time.Time{}, time.Time{}
		raw, err := json.Marshal(j)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE texts SET state = 'pending', done = false, done_order = NULL, next_at = $2, attempts = 0, body = $3,
			claimed_by = NULL, claim_until = NULL, claimed_at = NULL WHERE id = $1`, id, now, raw)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotRetriable) {
		return fmt.Errorf("pgstore: sending text %s again: %w", id, err)
	}
	return err
}

// Published implements store.Revisions.
func (s *Store) Published(ctx context.Context, centre string) (*store.Published, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM rosters WHERE centre = $1`, centre).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: the roster of %s: %w", centre, err)
	}
	var p store.Published
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pgstore: the stored roster of %s: %w", centre, err)
	}
	return &p, nil
}

// Publish implements store.Revisions.
func (s *Store) Publish(ctx context.Context, p *store.Published) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	centre, rev := p.Snapshot.Centre, int64(p.Snapshot.Roster.Revision)
	tag, err := s.pool.Exec(ctx, `INSERT INTO rosters (centre, revision, body) VALUES ($1, $2, $3)
		ON CONFLICT (centre) DO UPDATE SET revision = EXCLUDED.revision, body = EXCLUDED.body
		WHERE rosters.revision = EXCLUDED.revision - 1`, centre, rev, raw)
	if err != nil {
		return fmt.Errorf("pgstore: recording revision %d of %s: %w", rev, centre, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revision %d of %s: %w", rev, centre, store.ErrRevisionTaken)
	}
	return nil
}

// RecordGap implements store.Gaps.
func (s *Store) RecordGap(ctx context.Context, g store.Gap) error {
	raw, err := json.Marshal(g)
	if err != nil {
		return err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO logs (device, log, centre, last) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`, g.Device, g.Log, g.Centre); err != nil {
			return err
		}
		var last int64
		if err := tx.QueryRow(ctx, `SELECT last FROM logs WHERE device = $1 AND log = $2 FOR UPDATE`, g.Device, g.Log).Scan(&last); err != nil {
			return err
		}
		if uint64(last)+1 != g.From {
			return store.ErrLogMoved
		}
		if _, err := tx.Exec(ctx, `UPDATE logs SET last = $3 WHERE device = $1 AND log = $2`, g.Device, g.Log, int64(g.To)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO gaps (device, log, from_seq, centre, body) VALUES ($1, $2, $3, $4, $5)`, g.Device, g.Log, int64(g.From), g.Centre, raw)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrLogMoved) {
		return fmt.Errorf("pgstore: recording the gap %d..%d of %s/%s: %w", g.From, g.To, g.Device, g.Log, err)
	}
	return err
}

// Gaps implements store.Gaps.
func (s *Store) Gaps(ctx context.Context, centre string) ([]store.Gap, error) {
	rows, err := s.pool.Query(ctx, `SELECT body FROM gaps WHERE centre = $1 ORDER BY device, log, from_seq`, centre)
	if err != nil {
		return nil, fmt.Errorf("pgstore: the gaps of %s: %w", centre, err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("pgstore: the gaps of %s: %w", centre, err)
	}
	out := make([]store.Gap, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("pgstore: a stored gap: %w", err)
		}
	}
	return out, nil
}

// NextBinding implements store.BindingJobs.
func (s *Store) NextBinding(ctx context.Context) (*store.BindingJob, error) {
	var q int64
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT q, job FROM binding_jobs ORDER BY q LIMIT 1`).Scan(&q, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: the next binding job: %w", err)
	}
	return &store.BindingJob{Q: uint64(q), Job: raw}, nil
}

// UpdateBinding implements store.BindingJobs.
func (s *Store) UpdateBinding(ctx context.Context, j store.BindingJob) error {
	tag, err := s.pool.Exec(ctx, `UPDATE binding_jobs SET job = $2 WHERE q = $1`, int64(j.Q), []byte(j.Job))
	if err != nil {
		return fmt.Errorf("pgstore: updating binding job %d: %w", j.Q, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: binding job %d is not queued", j.Q)
	}
	return nil
}

// DoneBinding implements store.BindingJobs.
func (s *Store) DoneBinding(ctx context.Context, q uint64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM binding_jobs WHERE q = $1`, int64(q)); err != nil {
		return fmt.Errorf("pgstore: removing binding job %d: %w", q, err)
	}
	return nil
}
