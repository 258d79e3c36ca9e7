package pgstore

import (
	"context"
	"os"
	"strings"
	"testing"

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
