package supervisor

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// logFiles shares one rotating writer per log file between the instances
// that write it: during a replace, the old and the new web.1 both write
// web.1.log, and two rotating writers on one file would rotate it twice.
type logFiles struct {
	mu    sync.Mutex
	files map[string]*logFile
}

type logFile struct {
	*lumberjack.Logger
	refs int
}

// open returns the writer of path, creating it with the policy l.
func (lf *logFiles) open(path string, l LogPolicy) *lumberjack.Logger {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	f := lf.files[path]
	if f == nil {
		f = &logFile{Logger: &lumberjack.Logger{
			Filename:   path,
			MaxSize:    l.MaxSizeMB,
			MaxBackups: l.MaxBackups,
			MaxAge:     l.MaxAgeDays,
		}}
		lf.files[path] = f
	}
	f.refs++
	return f.Logger
}

// close drops a reference to path's writer and closes it with the last one.
func (lf *logFiles) close(path string) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	f := lf.files[path]
	if f == nil {
		return
	}
	f.refs--
	if f.refs <= 0 {
		_ = f.Close()
		delete(lf.files, path)
	}
}

// lastLines returns up to n last lines of the file at path.
func lastLines(path string, n int) string {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 8 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-window, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first one is probably cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
