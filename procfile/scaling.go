package procfile

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Scaling maps a process kind to its instance count.
type Scaling map[string]int

// ParseScaling reads a SCALING file: one "kind:count" per line, as piku
// writes it. "kind=count" (the form `piku ps:scale` takes) is accepted too.
// Spaces around the kind and count, blank lines and '#' comment lines are
// ignored. Counts are whole numbers from 0 to MaxScale. A repeated kind
// takes the last count. Anything else is an *Error.
func ParseScaling(r io.Reader, file string) (Scaling, error) {
	s := Scaling{}
	err := forEachLine(r, file, func(n int, raw string) error {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			return nil
		}
		i := strings.IndexAny(line, ":=")
		if i < 0 {
			return errorf(file, n, "missing ':' (expected \"kind:count\")")
		}
		kind := strings.TrimSpace(line[:i])
		count := strings.TrimSpace(line[i+1:])
		if !validKind(kind) {
			return errorf(file, n, "invalid process kind %q: use letters, digits, '_' and '-'", kind)
		}
		c, err := parseCount(count)
		if err != nil {
			return errorf(file, n, "%s: %v", kind, err)
		}
		s[kind] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parseCount(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing count")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("count %q must be a whole number from 0 to %d", s, MaxScale)
		}
	}
	c, err := strconv.Atoi(s)
	if err != nil || c > MaxScale {
		return 0, fmt.Errorf("count %q must be a whole number from 0 to %d", s, MaxScale)
	}
	return c, nil
}

// Kinds returns the kinds, sorted.
func (s Scaling) Kinds() []string {
	kinds := make([]string, 0, len(s))
	for k := range s {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// WriteScaling writes s as "kind:count" lines sorted by kind, the form piku
// writes. Invalid kinds or counts are an error and nothing more is written.
func WriteScaling(w io.Writer, s Scaling) error {
	bw := bufio.NewWriter(w)
	for _, k := range s.Kinds() {
		c := s[k]
		if !validKind(k) {
			return fmt.Errorf("writing scaling: invalid process kind %q", k)
		}
		if c < 0 || c > MaxScale {
			return fmt.Errorf("writing scaling: %s: count %d is not from 0 to %d", k, c, MaxScale)
		}
		fmt.Fprintf(bw, "%s:%d\n", k, c)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing scaling: %w", err)
	}
	return nil
}
