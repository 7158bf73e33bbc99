package deploy

import (
	"strings"
	"testing"
)

// FuzzParseRefUpdates: what git's hook input parses into is well formed:
// full hex revisions and a ref, and a deployable update is a branch.
func FuzzParseRefUpdates(f *testing.F) {
	z := strings.Repeat("0", 40)
	a := strings.Repeat("a", 40)
	for _, s := range []string{
		z + " " + a + " refs/heads/main\n", a + " " + z + " refs/heads/old\n", z + " " + a + " refs/tags/v1\n",
		"garbage\n", a + " " + a + "\n", "", "\n\n", a + " " + a + " refs/heads/a b\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ups, err := ParseRefUpdates(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, u := range ups {
			for _, rev := range []string{u.Old, u.New} {
				if len(rev) != 40 || strings.Trim(rev, "0123456789abcdef") != "" {
					t.Fatalf("%q: revision %q", in, rev)
				}
			}
			if u.Ref == "" {
				t.Fatalf("%q: empty ref", in)
			}
			if u.Deploys() && u.Branch() == "" {
				t.Fatalf("%q: %+v deploys but is no branch", in, u)
			}
		}
	})
}
