package daemon

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/piku/piku/internal/layout"
)

// placedError is a bad setting's error with the ENV file and line that
// set it; it unwraps to the error as it was.
type placedError struct {
	msg string
	err error
}

func (e *placedError) Error() string { return e.msg }
func (e *placedError) Unwrap() error { return e.err }

// leadingKey is the key a setting's error starts with: `KEY="v": ...`,
// `KEY: ...` or `KEY is ...`.
var leadingKey = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(?:=|:| )`)

// placeEnvError names, in err (a refused setting of app's, "app "x":
// KEY=...: what is accepted"), the ENV file and line that set the key:
// the config:set overrides (envs/APP/ENV) win over the checkout's ENV,
// as they do when the app's environment is made. An error that already
// names a line, or whose key no ENV file sets, is returned as it is.
func placeEnvError(root layout.Root, app string, err error) error {
	if err == nil {
		return nil
	}
	prefix := fmt.Sprintf("app %q: ", app)
	rest, ok := strings.CutPrefix(err.Error(), prefix)
	if !ok || strings.Contains(rest, " line ") {
		return err
	}
	rest = strings.TrimPrefix(rest, "ENV: ")
	m := leadingKey.FindStringSubmatch(rest)
	if m == nil {
		return err
	}
	for _, f := range []struct{ path, name string }{
		{root.EnvFile(app), root.EnvFile(app)},
		{root.AppEnvFile(app), "ENV"},
	} {
		if line := keyLine(f.path, m[1]); line > 0 {
			return &placedError{msg: prefix + f.name + " line " + strconv.Itoa(line) + ": " + rest, err: err}
		}
	}
	return err
}

// keyLine returns the last line of the ENV file at path that sets key
// (KEY=, or export KEY=), 0 when none does.
func keyLine(path, key string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	last := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		l = strings.TrimPrefix(l, "export ")
		if k, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == key {
			last = n
		}
	}
	return last
}

var _ interface{ Unwrap() error } = (*placedError)(nil)
