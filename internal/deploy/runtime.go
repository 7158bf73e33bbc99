package deploy

import (
	"os"
	"path/filepath"

	"github.com/piku/piku/procfile"
)

// Runtime is a kind of app piku knows how to build.
type Runtime struct {
	// Name is what the deploy announces: "Python" in "-----> Python app
	// detected".
	Name string
	// Trigger is the file (or Procfile entry) that selected the runtime.
	Trigger string
	// build installs the app's dependencies and builds it.
	build func(b *build) error
}

// runtimes is piku's detection order: the first whose trigger is present
// wins.
var runtimes = []struct {
	files []string
	kind  string // a Procfile entry that triggers instead of a file
	rt    Runtime
}{
	{files: []string{"requirements.txt"}, rt: Runtime{Name: "Python", build: buildPythonPip}},
	{files: []string{"pyproject.toml"}, rt: Runtime{Name: "Python", build: buildPythonProject}},
	{files: []string{"Gemfile"}, rt: Runtime{Name: "Ruby", build: buildRuby}},
	{files: []string{"package.json"}, rt: Runtime{Name: "Node", build: buildNode}},
	{files: []string{"pom.xml"}, rt: Runtime{Name: "Java Maven", build: buildMaven}},
	{files: []string{"build.gradle", "build.gradle.kts"}, rt: Runtime{Name: "Java Gradle", build: buildGradle}},
	{files: []string{"go.mod", "Godeps", "*.go"}, rt: Runtime{Name: "Go", build: buildGo}},
	{files: []string{"deps.edn"}, rt: Runtime{Name: "Clojure CLI", build: buildClojureCLI}},
	{files: []string{"project.clj"}, rt: Runtime{Name: "Clojure Lein", build: buildLein}},
	{files: []string{"Cargo.toml"}, rt: Runtime{Name: "Rust", build: buildRust}},
	{kind: procfile.KindPHP, rt: Runtime{Name: "PHP", build: buildNothing}},
	{kind: procfile.KindStatic, rt: Runtime{Name: "Static", build: buildNothing}},
}

// Detect returns the runtime of the checkout in dir with Procfile pf, in
// piku's order; an app that matches none is "generic": its Procfile
// commands run as they are.
func Detect(dir string, pf *procfile.Procfile) Runtime {
	for _, r := range runtimes {
		for _, f := range r.files {
			if m, _ := filepath.Glob(filepath.Join(dir, f)); len(m) > 0 {
				rt := r.rt
				rt.Trigger = f
				return rt
			}
		}
		if r.kind != "" && pf != nil {
			if _, ok := pf.Entry(r.kind); ok {
				rt := r.rt
				rt.Trigger = r.kind + " entry"
				return rt
			}
		}
	}
	return Runtime{Name: "Generic", Trigger: "Procfile", build: buildNothing}
}

func buildNothing(*build) error { return nil }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
