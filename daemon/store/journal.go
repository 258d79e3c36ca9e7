package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The journal is the tap's durable record. A tap writes one journal record
// and one fdatasync (bbolt's own commit costs two, plus its page writes),
// and only then is feedback given. A goroutine applies journal records to
// bbolt in the background; once bbolt has committed every record, the
// journal starts again from its beginning.
//
// The file is preallocated with zeros, so an append overwrites blocks that
// already exist: fdatasync then flushes data only, never the file's size.
//
// A record is
//
//	length  uint32, little endian: of the payload, 1..maxRecord
//	crc     uint32, little endian: CRC-32C of the payload
//	payload a batch (see batch.encode)
//
// Reading stops at the first record that is short, has a bad length or
// checksum, or whose first sequence does not follow the previous record's
// last. Records left from before the journal started again carry older
// sequences, so they end the chain too; a torn record (a crash mid-write)
// was never followed by feedback and is dropped.
type journal struct {
	f      *os.File
	path   string
	off    int64 // where the next record goes
	size   int64 // bytes preallocated
	noSync bool
}

const (
	journalChunk = 64 << 10 // preallocation step: some 250 taps
	maxRecord    = 1 << 20
	recordHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openJournal opens (creating if needed) the journal beside the database
// and returns the chain of batches it holds. readOnly only reads:
// a missing journal is then an empty one.
func openJournal(path string, noSync, readOnly bool) (*journal, []*batch, error) {
	flag := os.O_RDWR | os.O_CREATE
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if readOnly && errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: opening the journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("store: the journal: %w", err)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("store: reading the journal %s: %w", path, err)
	}
	j := &journal{f: f, path: path, size: fi.Size(), noSync: noSync}
	recs := readRecords(data)
	if !readOnly && fi.Size() == 0 {
		// A new file: its directory entry must survive a power cut too.
		if err := j.grow(); err != nil {
			f.Close()
			return nil, nil, err
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return j, recs, nil
}

// readRecords returns the batches of the chain of valid records at the
// start of data.
func readRecords(data []byte) []*batch {
	var out []*batch
	for len(data) >= recordHeader {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if n == 0 || n > maxRecord || int(n) > len(data)-recordHeader {
			break
		}
		p := data[recordHeader : recordHeader+int(n)]
		if crc32.Checksum(p, castagnoli) != sum {
			break
		}
		b, err := decodeBatch(p)
		if err != nil || (len(out) > 0 && b.first() != out[len(out)-1].last()+1) {
			break
		}
		out = append(out, b)
		data = data[recordHeader+int(n):]
	}
	return out
}

// append writes one record and makes it durable.
func (j *journal) append(payload []byte) error {
	if len(payload) == 0 || len(payload) > maxRecord {
		return fmt.Errorf("store: a journal record of %d bytes", len(payload))
	}
	rec := make([]byte, recordHeader, recordHeader+len(payload))
	putHeader(rec, payload)
	rec = append(rec, payload...)
	for j.off+int64(len(rec)) > j.size {
		if err := j.grow(); err != nil {
			return err
		}
	}
	if _, err := j.f.WriteAt(rec, j.off); err != nil {
		return fmt.Errorf("store: writing the journal: %w", err)
	}
	if !j.noSync {
		if err := syscall.Fdatasync(int(j.f.Fd())); err != nil {
			// The tap is refused: make sure a replay never finds it.
			j.f.WriteAt(make([]byte, recordHeader), j.off)
			return fmt.Errorf("store: syncing the journal: %w", err)
		}
	}
	j.off += int64(len(rec))
	return nil
}

// putHeader writes the record header of payload into h.
func putHeader(h, payload []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
}

// grow preallocates another chunk of zeros, durably.
func (j *journal) grow() error {
	if _, err := j.f.WriteAt(make([]byte, journalChunk), j.size); err != nil {
		return fmt.Errorf("store: growing the journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("store: growing the journal: %w", err)
	}
	j.size += journalChunk
	return nil
}

// restart makes the next record go to the start of the file: every record
// so far is in bbolt.
func (j *journal) restart() { j.off = 0 }

// shrink gives back what a long outage of bbolt made the journal grow to.
// Every record must be in bbolt.
func (j *journal) shrink() error {
	if j.size <= 4*journalChunk {
		return nil
	}
	if err := j.f.Truncate(journalChunk); err != nil {
		return fmt.Errorf("store: shrinking the journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("store: shrinking the journal: %w", err)
	}
	j.size, j.off = journalChunk, 0
	return nil
}

func (j *journal) close() error {
	if j == nil {
		return nil
	}
	return j.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	return nil
}
