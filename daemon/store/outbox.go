package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// kOutbox keeps the number of events in the events bucket, with the first
// and last sequences it was counted for (24 bytes), so that the outbox's
// depth is read without walking the bucket: walking 100,000 events pulls
// every page of the file into memory, for each status and each scrape.
// The sequences make it self-checking: a store that an earlier version
// (which does not keep the count) has written since no longer matches, and
// the count is taken again, once. No schema change: an earlier version
// opens the store as before.
var kOutbox = []byte("outbox_count")

// outboxCount returns how many events the events bucket holds.
func outboxCount(tx *bolt.Tx) int {
	first := uint64(0)
	if k, _ := tx.Bucket(bEvents).Cursor().First(); k != nil {
		first = binary.BigEndian.Uint64(k)
	}
	last, _ := getU64(tx.Bucket(bMeta), kSeq)
	if v := tx.Bucket(bMeta).Get(kOutbox); len(v) == 24 &&
		binary.BigEndian.Uint64(v[8:]) == first && binary.BigEndian.Uint64(v[16:]) == last {
		return int(binary.BigEndian.Uint64(v))
	}
	return tx.Bucket(bEvents).Stats().KeyN
}

// putOutboxCount records n as the events bucket's count, as it stands now.
func putOutboxCount(tx *bolt.Tx, n int) error {
	first := uint64(0)
	if k, _ := tx.Bucket(bEvents).Cursor().First(); k != nil {
		first = binary.BigEndian.Uint64(k)
	}
	last, _ := getU64(tx.Bucket(bMeta), kSeq)
	v := binary.BigEndian.AppendUint64(nil, uint64(n))
	v = binary.BigEndian.AppendUint64(v, first)
	v = binary.BigEndian.AppendUint64(v, last)
	return tx.Bucket(bMeta).Put(kOutbox, v)
}
