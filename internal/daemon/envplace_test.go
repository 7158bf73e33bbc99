package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/piku/piku/internal/layout"
)

// TestPlaceEnvError: a refused setting names the ENV file and line that
// set it, the config:set overrides before the checkout's ENV, for every
// shape of key error the daemon and the proxy make.
func TestPlaceEnvError(t *testing.T) {
	root, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root.App("blog"), root.Env("blog")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(root.AppEnvFile("blog"), "# settings\nNGINX_SERVER_NAME=blog.test\nPIKU_CPU_WEIGHT=0\nexport PIKU_ROLLOUT=sideways\nPIKU_MEMORY_MAX=1G\n")
	write(root.EnvFile("blog"), "PIKU_MEMORY_MAX=lots\n")
	sentinel := errors.New("accepted is a size")
	overrides := filepath.Join(root.Env("blog"), "ENV")
	for _, tc := range []struct{ in, want string }{
		{`app "blog": ENV: PIKU_CPU_WEIGHT="0": accepted is a whole number from 1 to 10000`,
			`app "blog": ENV line 3: PIKU_CPU_WEIGHT="0": accepted is a whole number from 1 to 10000`},
		// The override wins, as it does in the app's environment.
		{`app "blog": ENV: PIKU_MEMORY_MAX="lots": accepted is a size`,
			`app "blog": ` + overrides + ` line 1: PIKU_MEMORY_MAX="lots": accepted is a size`},
		{`app "blog": PIKU_ROLLOUT="sideways": want rolling or recreate`,
			`app "blog": ENV line 4: PIKU_ROLLOUT="sideways": want rolling or recreate`},
		{`app "blog": NGINX_SERVER_NAME: "blog.test" is taken`,
			`app "blog": ENV line 2: NGINX_SERVER_NAME: "blog.test" is taken`},
		// Already placed, not a key's, not set in a file: as it was.
		{`app "blog": ENV line 9: A is longer than 131072 bytes`, `app "blog": ENV line 9: A is longer than 131072 bytes`},
		{`app "blog": rolling out: web.1 exited`, `app "blog": rolling out: web.1 exited`},
		{`app "blog": PIKU_IDLE_TIMEOUT: bad`, `app "blog": PIKU_IDLE_TIMEOUT: bad`},
	} {
		got := placeEnvError(root, "blog", errors.New(tc.in))
		if got.Error() != tc.want {
			t.Errorf("placeEnvError(%s)\n = %s\nwant %s", tc.in, got, tc.want)
		}
	}
	wrapped := placeEnvError(root, "blog", &wrapErr{`app "blog": ENV: PIKU_MEMORY_MAX="lots": accepted is a size`, sentinel})
	if !errors.Is(wrapped, sentinel) {
		t.Error("the placed error does not unwrap to the original")
	}
}

type wrapErr struct {
	msg string
	err error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.err }
