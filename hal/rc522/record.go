package rc522

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"periph.io/x/conn/v3/conntest"

	"kiumtap/hal/rc522/reg"
)

// A recording is the SPI traffic of a reader session as text, one
// transaction a line, so that a read on real hardware can become a
// spitest.Playback fixture:
//
//	# comment
//	w 1200              write: MOSI bytes in hex
//	r 8E00 0092         read: MOSI bytes, then MISO bytes
//
// A note after the bytes names the registers, for people; the parser
// ignores everything after a second '#'.
const recordingHeader = "# kiumtap SPI recording v1"

// WriteRecording writes ops in the recording format.
func WriteRecording(w io.Writer, ops []conntest.IO) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, recordingHeader)
	for _, op := range ops {
		if len(op.W) == 0 {
			continue
		}
		r, read := reg.FromAddr(op.W[0])
		note := reg.Names[r]
		if read {
			fmt.Fprintf(bw, "r %X %X # read %s\n", op.W, op.R, note)
		} else {
			fmt.Fprintf(bw, "w %X # write %s\n", op.W, note)
		}
	}
	return bw.Flush()
}

// maxRecordingOps bounds what ParseRecording accepts, so a hostile file
// cannot make it allocate without end.
const maxRecordingOps = 1 << 20

// ParseRecording reads a recording back into the operations a
// spitest.Playback replays.
func ParseRecording(rd io.Reader) ([]conntest.IO, error) {
	var ops []conntest.IO
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(ops) >= maxRecordingOps {
			return nil, fmt.Errorf("rc522: recording line %d: more than %d transactions", n, maxRecordingOps)
		}
		var op conntest.IO
		var err error
		switch {
		case f[0] == "w" && len(f) == 2:
			op.W, err = hex.DecodeString(f[1])
		case f[0] == "r" && len(f) == 3:
			if op.W, err = hex.DecodeString(f[1]); err == nil {
				op.R, err = hex.DecodeString(f[2])
			}
			if err == nil && len(op.R) != len(op.W) {
				err = fmt.Errorf("%d bytes read for %d written", len(op.R), len(op.W))
			}
		default:
			err = fmt.Errorf(`want "w MOSI" or "r MOSI MISO", got %q`, line)
		}
		if err == nil && len(op.W) == 0 {
			err = fmt.Errorf("empty transaction")
		}
		if err == nil {
			_, read := reg.FromAddr(op.W[0])
			if read != (f[0] == "r") {
				err = fmt.Errorf("%q line whose address byte %#02x says otherwise", f[0], op.W[0])
			}
		}
		if err != nil {
			return nil, fmt.Errorf("rc522: recording line %d: %w", n, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rc522: reading recording: %w", err)
	}
	return ops, nil
}
