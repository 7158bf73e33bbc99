package layout

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidateApp: a name ValidateApp accepts is one path element that
// stays inside PIKU_ROOT's folders, and AppFromRepoPath only returns such
// names.
func FuzzValidateApp(f *testing.F) {
	for _, s := range []string{"app", "my-app.v2", "../x", "..", ".", "a/b", "~/app.git", "/app", "a b", "a;id", "-rf", "", "x\x00y"} {
		f.Add(s)
	}
	r, err := New("/srv/piku")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		check := func(app string) {
			p := r.App(app)
			if filepath.Dir(p) != r.AppsDir() || filepath.Base(p) != app || strings.ContainsAny(app, "/\x00") {
				t.Fatalf("accepted %q, which resolves to %s", app, p)
			}
		}
		if ValidateApp(name) == nil {
			check(name)
		}
		if app, err := AppFromRepoPath(name); err == nil {
			if ValidateApp(app) != nil {
				t.Fatalf("AppFromRepoPath(%q) = %q, which ValidateApp refuses", name, app)
			}
			check(app)
		}
	})
}
