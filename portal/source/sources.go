package source

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"kiumtap/portal/store"
)

// Sources is where the portal keeps its centres' roster sources, and
// what every writer of them goes through: pushes (Push) and the bridge's
// binder (card bindings made at terminals).
//
//   - Dir: one file per centre in a directory, for kiumbridge on one host
//     (the bbolt store);
//   - Stored: in the portal's store, for kiumbridge on several hosts on
//     one PostgreSQL: every instance reads and writes the same sources,
//     without a shared file system.
type Sources interface {
	// Hold keeps every other writer of the sources out (pushes and
	// bridges, in any process or host) until release is called.
	Hold(ctx context.Context) (release func(), err error)
	// Changed returns the sources that changed since this value's last
	// call (every source, the first time), and the error of each source
	// refused (unreadable, invalid, or not named for its centre): the
	// caller keeps the last good one of those.
	Changed(ctx context.Context) ([]*Source, error)
	// Get returns a centre's current source, nil if it has none.
	Get(ctx context.Context, centre string) (*Source, error)
	// Write validates a source and replaces its centre's, atomically and
	// durably. A source it wrote is not Changed for this value again.
	Write(ctx context.Context, s *Source) error
	// String says where the sources are, for messages.
	String() string
}

// Dir is the sources of a directory, CENTRE.json each; its lock file
// (LockFile) holds writers of every process apart, and a process's own
// writers are held apart by a lock of the directory's in the process.
func Dir(path string) Sources { return &dir{path: path, seen: map[string]fileStamp{}} }

type dir struct {
	path string
	mu   sync.Mutex
	seen map[string]fileStamp // the files as last read or written
}

// fileStamp tells a source file's versions apart. The modification time
// alone does not: two writes within one tick of the kernel's clock share
// it, and a push would go unseen. Sources are replaced by rename, so the
// inode changes with every write.
type fileStamp struct {
	mtime time.Time
	size  int64
	ino   uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

func (d *dir) String() string { return d.path }

func (d *dir) Hold(ctx context.Context) (func(), error) {
	mu := dirLock(d.path)
	select {
	case mu <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("source: waiting for %s (another writer in this process holds it): %w", d.path, ctx.Err())
	}
	unlock, err := lockWait(ctx, d.path)
	if err != nil {
		<-mu
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { unlock(); <-mu }) }, nil
}

// lockWait is Lock, giving up when ctx ends: the lock is tried every
// 20 ms.
func lockWait(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(path, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("source: locking %s: %w", path, err)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := tryLockFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("source: locking %s: %w", path, err)
		}
		if ok {
			return func() { unlockFile(f); f.Close() }, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("source: waiting for %s (another process holds its lock %s): %w", path, LockFile, ctx.Err())
		}
	}
}

func (d *dir) Changed(context.Context) ([]*Source, error) {
	files, err := filepath.Glob(filepath.Join(d.path, "*.json"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.path); err != nil {
		return nil, fmt.Errorf("source: the sources' directory: %w", err)
	}
	var out []*Source
	var errs []error
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		d.mu.Lock()
		same := d.seen[f] == stampOf(fi)
		d.seen[f] = stampOf(fi)
		d.mu.Unlock()
		if same {
			continue
		}
		src, err := Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".json"); want != src.Roster.Centre.ID {
			errs = append(errs, fmt.Errorf("%s holds centre %q: name the file %s.json", f, src.Roster.Centre.ID, src.Roster.Centre.ID))
			continue
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}

// fileOf is a centre's file, refusing IDs that would name a file
// elsewhere.
func (d *dir) fileOf(centre string) (string, error) {
	if centre == "" || centre == "." || centre == ".." || strings.ContainsAny(centre, `/\`) {
		return "", fmt.Errorf("source: centre ID %q cannot name a file: want letters, digits, _ . -", centre)
	}
	return filepath.Join(d.path, centre+".json"), nil
}

func (d *dir) Get(_ context.Context, centre string) (*Source, error) {
	path, err := d.fileOf(centre)
	if err != nil {
		return nil, err
	}
	src, err := Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return src, err
}

func (d *dir) Write(_ context.Context, s *Source) error {
	if err := s.Validate(); err != nil {
		return err
	}
	path, err := d.fileOf(s.Roster.Centre.ID)
	if err != nil {
		return err
	}
	if err := Write(path, s); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.seen[path] = stampOf(fi)
	d.mu.Unlock()
	return nil
}

// dirLock is the lock on a source directory among the writers of this
// process, a channel of one (Lock holds it among processes and hosts;
// flocks of one process on separate opens do exclude each other, but the
// waits here can give up with their ctx).
func dirLock(path string) chan struct{} {
	mu, _ := dirLocks.LoadOrStore(filepath.Clean(path), make(chan struct{}, 1))
	return mu.(chan struct{})
}

var dirLocks sync.Map

// StoredStore is what Stored needs of the portal's store.
type StoredStore interface {
	store.Registry
	store.Locks
}

// Stored is the sources kept in the portal's store: each centre's source
// (JSON) in the registry's table "sources", its version in "sourcever",
// written in one transaction; the store's lock "sources" holds writers of
// every instance apart.
func Stored(st StoredStore) Sources {
	return &stored{st: st, seen: map[string]uint64{}, read: map[string]uint64{}}
}

const (
	tSources   = "sources"   // centre → source (JSON)
	tSourceVer = "sourcever" // centre → version, raised by every write
	sourceLock = "sources"
)

// ErrSourceMoved: a stored source changed since it was read (another
// instance wrote it without holding the sources): read it again.
var ErrSourceMoved = errors.New("source: the centre's source changed since it was read")

type stored struct {
	st StoredStore
	mu sync.Mutex
	// seen are the versions Changed has returned or Write wrote; read,
	// those a write replaces (the last Get, Changed or Write of each).
	seen, read map[string]uint64
}

func (s *stored) String() string { return "the store" }

func (s *stored) Hold(ctx context.Context) (func(), error) {
	return s.st.Lock(ctx, sourceLock)
}

func version(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (s *stored) Changed(ctx context.Context) ([]*Source, error) {
	var out []*Source
	var errs []error
	seen := map[string]uint64{}
	err := s.st.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		out, errs = out[:0], errs[:0]
		s.mu.Lock()
		defer s.mu.Unlock()
		return tx.Scan(tSourceVer, nil, func(k, v []byte) error {
			centre, ver := string(k), version(v)
			if s.seen[centre] == ver {
				return nil
			}
			seen[centre] = ver
			raw, err := tx.Get(tSources, k)
			if err != nil {
				return err
			}
			src, err := Parse(raw)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("the stored source of %s: %w", centre, err))
			case src.Roster.Centre.ID != centre:
				errs = append(errs, fmt.Errorf("the stored source of %s holds centre %q", centre, src.Roster.Centre.ID))
			default:
				out = append(out, src)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("source: reading the stored sources: %w", err)
	}
	s.mu.Lock()
	for c, v := range seen { // raised only: a Write meanwhile may be newer
		if v > s.seen[c] {
			s.seen[c] = v
		}
		if v > s.read[c] {
			s.read[c] = v
		}
	}
	s.mu.Unlock()
	return out, errors.Join(errs...)
}

func (s *stored) Get(ctx context.Context, centre string) (*Source, error) {
	var src *Source
	var ver uint64
	err := s.st.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		v, err := tx.Get(tSourceVer, []byte(centre))
		if err != nil || v == nil {
			src, ver = nil, 0
			return err
		}
		raw, err := tx.Get(tSources, []byte(centre))
		if err != nil {
			return err
		}
		ver = version(v)
		src, err = Parse(raw)
		return err
	})
	s.mu.Lock()
	s.read[centre] = ver // a write replaces this version, even of a source that does not read
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("source: the stored source of %s: %w", centre, err)
	}
	return src, nil
}

// Write stores s as its centre's next version, if the stored one is
// still the version this value last read or wrote (ErrSourceMoved if
// not).
func (s *stored) Write(ctx context.Context, src *Source) error {
	if err := src.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(src)
	if err != nil {
		return err
	}
	centre := src.Roster.Centre.ID
	s.mu.Lock()
	want := s.read[centre]
	s.mu.Unlock()
	var next uint64
	err = s.st.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		v, err := tx.Get(tSourceVer, []byte(centre))
		if err != nil {
			return err
		}
		if version(v) != want {
			return fmt.Errorf("%w: version %d, read at %d", ErrSourceMoved, version(v), want)
		}
		next = version(v) + 1
		if err := tx.Put(tSources, []byte(centre), raw); err != nil {
			return err
		}
		return tx.Put(tSourceVer, []byte(centre), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return fmt.Errorf("source: storing the source of %s: %w", centre, err)
	}
	s.mu.Lock()
	s.seen[centre], s.read[centre] = next, next
	s.mu.Unlock()
	return nil
}
