package deploy

import (
	"bytes"
	"io"
	"sync"
)

// indent is the prefix piku puts before the output of the commands a
// deploy runs, under the "-----> " step lines.
const indent = "       "

// indentWriter prefixes every line written through it with indent.
type indentWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bol bool // at the beginning of a line
}

func newIndentWriter(w io.Writer) *indentWriter { return &indentWriter{w: w, bol: true} }

func (iw *indentWriter) Write(p []byte) (int, error) {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	var buf bytes.Buffer
	for _, c := range p {
		if iw.bol {
			buf.WriteString(indent)
			iw.bol = false
		}
		buf.WriteByte(c)
		if c == '\n' {
			iw.bol = true
		}
	}
	if _, err := iw.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
