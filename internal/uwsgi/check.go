package uwsgi

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/piku/piku/procfile"
)

// DefaultPluginDir is where Debian and Ubuntu install uWSGI plugins.
const DefaultPluginDir = "/usr/lib/uwsgi/plugins"

// debianPackage names the package that provides each plugin piku uses.
var debianPackage = map[string]string{
	"python3":         "uwsgi-plugin-python3",
	"asyncio_python3": "uwsgi-plugin-asyncio-python3",
	"gevent_python3":  "uwsgi-plugin-gevent-python3",
	"python":          "uwsgi-plugin-python",
	"asyncio_python":  "uwsgi-plugin-asyncio-python",
	"gevent_python":   "uwsgi-plugin-gevent-python",
	"php":             "uwsgi-plugin-php",
	"jvm":             "uwsgi-plugin-jvm-openjdk-17",
	"jwsgi":           "uwsgi-plugin-jwsgi-openjdk-17",
	"rack":            "uwsgi-plugin-rack-ruby3.1",
}

// System is where Check looks for uWSGI. The zero value looks up "uwsgi" on
// PATH and plugins in DefaultPluginDir.
type System struct {
	// PluginDir holds the *_plugin.so files; default DefaultPluginDir.
	PluginDir string
	// LookPath finds the uwsgi binary; default exec.LookPath.
	LookPath func(string) (string, error)
}

// Check reports whether uWSGI and the plugins a kind entry needs with env
// are installed on this system; see System.Check.
func Check(kind string, env *procfile.Env) error { return System{}.Check(kind, env) }

// Check returns an error naming the Debian package to install when the
// uwsgi binary or a plugin that a vassal of kind would load is missing.
// Plugins uWSGI can live without (rbrequire) are not checked.
func (s System) Check(kind string, env *procfile.Env) error {
	look := s.LookPath
	if look == nil {
		look = exec.LookPath
	}
	dir := s.PluginDir
	if dir == "" {
		dir = DefaultPluginDir
	}
	plugins, err := Plugins(kind, env)
	if err != nil {
		return err
	}
	if _, err := look("uwsgi"); err != nil {
		return fmt.Errorf("%s entries need uWSGI, which is not installed: apt-get install uwsgi-core %s",
			kind, debianPackage[plugins[0]])
	}
	for _, p := range plugins {
		if p == "rbrequire" {
			continue
		}
		so := filepath.Join(dir, p+"_plugin.so")
		if _, err := os.Stat(so); err != nil {
			pkg := debianPackage[p]
			if pkg == "" {
				pkg = "the package that provides " + p + "_plugin.so"
			}
			return fmt.Errorf("%s entries need the uWSGI %s plugin (%s is missing): apt-get install %s", kind, p, so, pkg)
		}
	}
	return nil
}
