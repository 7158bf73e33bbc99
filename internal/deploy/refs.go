package deploy

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// zeroRev is the revision git reports for a ref that does not exist (on
// one side of a creation or a deletion).
func zeroRev(rev string) bool { return strings.Trim(rev, "0") == "" }

// RefUpdate is one line a pre- or post-receive hook reads: a ref moving
// from Old to New.
type RefUpdate struct {
	Old, New, Ref string
}

// Branch is the branch name of a refs/heads/ ref, or "".
func (u RefUpdate) Branch() string {
	b, _ := strings.CutPrefix(u.Ref, "refs/heads/")
	if b == u.Ref {
		return ""
	}
	return b
}

// Deploys reports whether the update is a branch push that deploys New: a
// branch that is created or moved, not deleted.
func (u RefUpdate) Deploys() bool { return u.Branch() != "" && !zeroRev(u.New) }

// Describe says in a few words what the update is and whether it deploys.
func (u RefUpdate) Describe() string {
	switch {
	case u.Deploys():
		return fmt.Sprintf("branch %s at %s", u.Branch(), short(u.New))
	case u.Branch() != "":
		return fmt.Sprintf("branch %s deleted: nothing to deploy", u.Branch())
	case strings.HasPrefix(u.Ref, "refs/tags/"):
		return fmt.Sprintf("tag %s: tags are not deployed", strings.TrimPrefix(u.Ref, "refs/tags/"))
	default:
		return fmt.Sprintf("%s: only branches are deployed", u.Ref)
	}
}

// ParseRefUpdates reads the "OLD NEW REF" lines git gives a receive hook on
// stdin.
func ParseRefUpdates(r io.Reader) ([]RefUpdate, error) {
	var out []RefUpdate
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !isHex(f[0]) || !isHex(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			return nil, fmt.Errorf("hook input line %d: %q is not \"OLD NEW REF\"", n, line)
		}
		out = append(out, RefUpdate{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the hook input: %w", err)
	}
	return out, nil
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// short is the abbreviated revision shown to users and used in release IDs.
func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
