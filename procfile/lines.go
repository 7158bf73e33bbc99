package procfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxInput bounds what the parsers read: these files are written by hand and
// are small; anything larger is a mistake (or an attack) and is refused.
const maxInput = 16 << 20

// readAll reads r whole, refusing more than maxInput bytes, and drops a
// leading UTF-8 byte order mark.
func readAll(r io.Reader, file string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	if len(b) > maxInput {
		return "", fmt.Errorf("reading %s: larger than %d bytes", file, maxInput)
	}
	return strings.TrimPrefix(string(b), "\ufeff"), nil
}

// forEachLine calls fn with each line of r (without its line ending, CRLF or
// LF) and its 1-based number. It stops at the first error fn returns.
func forEachLine(r io.Reader, file string, fn func(n int, line string) error) error {
	br := bufio.NewReader(io.LimitReader(r, maxInput+1))
	n, total := 0, 0
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		total += len(line)
		if total > maxInput {
			return fmt.Errorf("reading %s: larger than %d bytes", file, maxInput)
		}
		if line == "" && err != nil {
			return nil
		}
		n++
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if ferr := fn(n, line); ferr != nil {
			return ferr
		}
		if err != nil {
			return nil
		}
	}
}

// validKind reports whether s is a process kind name: one or more letters,
// digits, '_' or '-' (piku's `^([A-Za-z0-9_-]+):`).
func validKind(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
