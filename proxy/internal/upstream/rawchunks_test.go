package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"testing"
)

// readAllBy reads r to its end through reads of the sizes in steps (in
// turn), and returns what came and the error that ended it (nil for
// io.EOF).
func readAllBy(r io.Reader, steps []byte) ([]byte, error) {
	var out []byte
	for i := 0; ; i++ {
		size := 4096
		if len(steps) > 0 {
			size = int(steps[i%len(steps)])%512 + 1
		}
		b := make([]byte, size)
		n, err := r.Read(b)
		out = append(out, b[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if i > 1<<20 {
			return out, io.ErrNoProgress
		}
	}
}

// FuzzRawChunksDiff: rawChunks, the chunked reader of answers relayed
// through a pipe, reads any bytes as net/http's chunked reader does: the
// same data, the same error, whatever the sizes of the reads.
func FuzzRawChunksDiff(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;ext=1\r\nabc\r\n0\r\n",
		"3 \t\r\nabc\r\n0\r\n",
		"3\nabc\r\n0\r\n",
		"3\r\nabcX\r\n",
		"10000000000000000\r\n",
		"ffffffffffffffff\r\n",
		"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n",
		"g\r\n",
		"\r\n",
		"2\r\nab",
		"1;" + string(bytes.Repeat([]byte("x"), 5000)) + "\r\na\r\n0\r\n",
	} {
		f.Add([]byte(s), []byte{3, 200, 1})
	}
	f.Fuzz(func(t *testing.T, in, steps []byte) {
		want, wantErr := readAllBy(httputil.NewChunkedReader(bufio.NewReaderSize(bytes.NewReader(in), 16<<10)), steps)
		got, gotErr := readAllBy(&rawChunks{br: bufio.NewReaderSize(bytes.NewReader(in), 16<<10)}, steps)
		if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) ||
			(gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("%q: rawChunks read %q (%v), net/http's %q (%v)", in, got, gotErr, want, wantErr)
		}
	})
}
