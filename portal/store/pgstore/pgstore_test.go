package pgstore

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kiumtap/internal/pgtest"
	"kiumtap/portal/store"
	"kiumtap/portal/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The PostgreSQL store keeps the portal's storage contract, with the
// suite's second instance on a pool of its own: another process, as far
// as the database can tell.
func TestContract(t *testing.T) {
	c := pgtest.Shared(t)
	dsns := map[store.Store]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn := c.NewDatabase(t)
		s := open(t, dsn)
		dsns[s] = dsn
		return s
	}, storetest.Options{Second: func(t *testing.T, first store.Store) store.Store {
		s := open(t, dsns[first])
		t.Cleanup(func() { s.Close() })
		return s
	}})
}

// Migrations apply once, however many instances start together; a schema
// newer than the code is refused with what to do.
func TestMigrations(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.NewDatabase(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("instances starting together: %v", err)
		}
	}
	s := open(t, dsn)
	defer s.Close()
	var versions []int
	rows, err := s.pool.Query(ctx, `SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		versions = append(versions, v)
	}
	rows.Close()
	if len(versions) != Version() || versions[len(versions)-1] != Version() {
		t.Fatalf("schema versions %v, want 1..%d once each", versions, Version())
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, Version()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer than this kiumbridge knows") {
		t.Fatalf("a newer schema: %v", err)
	}
	if _, err := Open(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"); err == nil || !strings.Contains(err.Error(), "check the database URL") {
		t.Fatalf("no database: %v", err)
	}
}

// A lock's holder whose connection dies (a killed process, a network cut)
// lets it go at the server: another instance takes it, and the first's
// release afterwards is harmless.
func TestLockLetGoWithItsSession(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	release, err := a.Lock(ctx, "sources")
	if err != nil {
		t.Fatal(err)
	}
	tag, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("ending the holder's session: %v (%d)", err, tag.RowsAffected())
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := b.Lock(wait, "sources")
	if err != nil {
		t.Fatalf("the lock of a dead session: %v", err)
	}
	release()
	r()
	if r, err := a.Lock(wait, "sources"); err != nil {
		t.Fatalf("the first instance again, on a new connection: %v", err)
	} else {
		r()
	}
}

// Schema 5 keeps each text's centre and tap time beside its body: texts
// stored under schema 4 get them from their bodies in the upgrade.
func TestUpgradeIndexesTexts(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for v := range 4 {
		if _, err := conn.Exec(ctx, migrations[v]); err != nil {
			t.Fatalf("schema %d: %v", v+1, err)
		}
		conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v+1)
	}
	at := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	body := fmt.Sprintf(`{"id":"door-1/0","centre":"mangwon1","child":"c1","kind":"arrival","at":%q,"to":"01012345678","state":"failed"}`, at.Format(time.RFC3339Nano))
	if _, err := conn.Exec(ctx, `INSERT INTO texts (id, state, next_at, created, attempts, body, done, done_order) VALUES ('door-1/0', 'failed', $1, $1, 1, $2, true, 1)`, at, body); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s := open(t, dsn)
	defer s.Close()
	var got []string
	err = s.CentreJobs(ctx, "mangwon1", at.Add(-time.Hour), func(j store.Job) bool { got = append(got, j.ID+" "+j.State); return true })
	if err != nil || len(got) != 1 || got[0] != "door-1/0 failed" {
		t.Fatalf("a text of schema 4 after the upgrade: %v %v", got, err)
	}
}
