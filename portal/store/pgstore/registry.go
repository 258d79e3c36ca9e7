package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"kiumtap/portal/store"
)

// registryLockID keys the transaction-scoped advisory lock that runs the
// registry's write transactions one at a time across instances.
const registryLockID = 0x6b69756d02

// Devices implements store.Events.
func (s *Store) Devices(ctx context.Context, centre string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT device FROM logs WHERE centre = $1 ORDER BY device`, centre)
	if err != nil {
		return nil, fmt.Errorf("pgstore: the terminals of %s: %w", centre, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: the terminals of %s: %w", centre, err)
	}
	return out, nil
}

// UpdateRegistry implements store.Registry: the transaction first takes
// an advisory lock held until it ends, so registry writes of every
// instance follow one another.
func (s *Store) UpdateRegistry(ctx context.Context, fn func(store.RegistryTx) error) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(registryLockID)); err != nil {
			return fmt.Errorf("pgstore: waiting for the registry's lock: %w", err)
		}
		return fn(&registryTx{ctx: ctx, tx: tx})
	})
	return err
}

// ViewRegistry implements store.Registry, on one snapshot.
func (s *Store) ViewRegistry(ctx context.Context, fn func(store.RegistryTx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(&registryTx{ctx: ctx, tx: tx})
	})
}

type registryTx struct {
	ctx context.Context
	tx  pgx.Tx
}

func (r *registryTx) Get(table string, key []byte) ([]byte, error) {
	var v []byte
	err := r.tx.QueryRow(r.ctx, `SELECT v FROM registry WHERE tbl = $1 AND k = $2`, table, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading registry %s: %w", table, err)
	}
	return v, nil
}

func (r *registryTx) Put(table string, key, value []byte) error {
	_, err := r.tx.Exec(r.ctx, `INSERT INTO registry (tbl, k, v) VALUES ($1, $2, $3) ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v`, table, key, value)
	if err != nil {
		return fmt.Errorf("pgstore: writing registry %s: %w", table, err)
	}
	return nil
}

func (r *registryTx) Delete(table string, key []byte) error {
	if _, err := r.tx.Exec(r.ctx, `DELETE FROM registry WHERE tbl = $1 AND k = $2`, table, key); err != nil {
		return fmt.Errorf("pgstore: deleting from registry %s: %w", table, err)
	}
	return nil
}

// after is the least key above every key starting with prefix; nil when
// there is none (the prefix is empty or all 0xff).
func after(prefix []byte) []byte {
	p := bytes.Clone(prefix)
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] < 0xff {
			p[i]++
			return p[:i+1]
		}
	}
	return nil
}

func (r *registryTx) Scan(table string, prefix []byte, fn func(k, v []byte) error) error {
	if prefix == nil {
		prefix = []byte{} // not NULL: k >= NULL holds for no key
	}
	// The rows are read whole before fn runs: fn may use the transaction.
	rows, err := r.tx.Query(r.ctx, `SELECT k, v FROM registry WHERE tbl = $1 AND k >= $2 AND ($3::bytea IS NULL OR k < $3) ORDER BY k`, table, prefix, after(prefix))
	if err != nil {
		return fmt.Errorf("pgstore: reading registry %s: %w", table, err)
	}
	type kv struct{ k, v []byte }
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (kv, error) {
		var x kv
		err := row.Scan(&x.k, &x.v)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("pgstore: reading registry %s: %w", table, err)
	}
	for _, x := range all {
		if err := fn(x.k, x.v); err != nil {
			if errors.Is(err, store.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (r *registryTx) Sequence(table string) (uint64, error) {
	var n int64
	err := r.tx.QueryRow(r.ctx, `SELECT n FROM registry_seq WHERE tbl = $1`, table).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: registry %s's counter: %w", table, err)
	}
	return uint64(n), nil
}

func (r *registryTx) NextSequence(table string) (uint64, error) {
	var n int64
	err := r.tx.QueryRow(r.ctx, `INSERT INTO registry_seq (tbl, n) VALUES ($1, 1) ON CONFLICT (tbl) DO UPDATE SET n = registry_seq.n + 1 RETURNING n`, table).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pgstore: registry %s's counter: %w", table, err)
	}
	return uint64(n), nil
}

func (r *registryTx) SetSequence(table string, n uint64) error {
	_, err := r.tx.Exec(r.ctx, `INSERT INTO registry_seq (tbl, n) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET n = EXCLUDED.n`, table, int64(n))
	if err != nil {
		return fmt.Errorf("pgstore: registry %s's counter: %w", table, err)
	}
	return nil
}

func (r *registryTx) QueueBinding(q uint64, job json.RawMessage) (uint64, error) {
	if q == 0 {
		var n int64
		if err := r.tx.QueryRow(r.ctx, `INSERT INTO binding_jobs (job) VALUES ($1) RETURNING q`, []byte(job)).Scan(&n); err != nil {
			return 0, fmt.Errorf("pgstore: queueing a binding job: %w", err)
		}
		return uint64(n), nil
	}
	tag, err := r.tx.Exec(r.ctx, `UPDATE binding_jobs SET job = $2 WHERE q = $1`, int64(q), []byte(job))
	if err != nil {
		return 0, fmt.Errorf("pgstore: updating binding job %d: %w", q, err)
	}
	if tag.RowsAffected() == 0 {
		return 0, fmt.Errorf("pgstore: binding job %d is not queued", q)
	}
	return q, nil
}

// BindingQueued locks the queue against inserts (an event's binding job
// from another instance) until the transaction ends, then looks.
func (r *registryTx) BindingQueued() (bool, error) {
	if _, err := r.tx.Exec(r.ctx, `LOCK TABLE binding_jobs IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return false, fmt.Errorf("pgstore: locking the binding queue: %w", err)
	}
	var any bool
	if err := r.tx.QueryRow(r.ctx, `SELECT EXISTS (SELECT 1 FROM binding_jobs)`).Scan(&any); err != nil {
		return false, fmt.Errorf("pgstore: looking at the binding queue: %w", err)
	}
	return any, nil
}

// lockSpace is the upper 32 bits of the session-level advisory locks'
// keys (store.Locks); the lower 32 are the name's FNV-1a hash.
const lockSpace = 0x6b69756d

// Lock implements store.Locks with a session-level advisory lock on a
// connection of its own, held until release: a process that dies, or a
// connection that breaks, lets it go at the server.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	// Waiters of this process queue here first, so they wait without a
	// connection each: the holder needs the pool's connections for its
	// work.
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	mine := s.locks[name]
	if mine == nil {
		mine = make(chan struct{}, 1)
		s.locks[name] = mine
	}
	s.mu.Unlock()
	select {
	case mine <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("pgstore: waiting for the lock %q: %w", name, ctx.Err())
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	key := int64(lockSpace)<<32 | int64(h.Sum32())
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		<-mine
		return nil, fmt.Errorf("pgstore: a connection for the lock %q: %w", name, err)
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// Cancelled mid-wait, the server may still grant it: the
		// connection is not given back with a lock on it.
		c.Conn().Close(context.Background())
		c.Release()
		<-mine
		return nil, fmt.Errorf("pgstore: waiting for the lock %q: %w", name, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
				c.Conn().Close(context.Background()) // the session's end lets it go
			}
			c.Release()
			<-mine
		})
	}, nil
}
