package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piku/piku/procfile"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		files    []string
		procfile string
		want     string
		trigger  string
	}{
		{[]string{"requirements.txt", "package.json"}, "web: x", "Python", "requirements.txt"},
		{[]string{"pyproject.toml"}, "web: x", "Python", "pyproject.toml"},
		{[]string{"Gemfile", "package.json"}, "web: x", "Ruby", "Gemfile"},
		{[]string{"package.json"}, "web: x", "Node", "package.json"},
		{[]string{"pom.xml"}, "web: x", "Java Maven", "pom.xml"},
		{[]string{"build.gradle"}, "web: x", "Java Gradle", "build.gradle"},
		{[]string{"build.gradle.kts"}, "web: x", "Java Gradle", "build.gradle.kts"},
		{[]string{"go.mod", "main.go"}, "web: x", "Go", "go.mod"},
		{[]string{"main.go"}, "web: x", "Go", "*.go"},
		{[]string{"deps.edn"}, "web: x", "Clojure CLI", "deps.edn"},
		{[]string{"project.clj"}, "web: x", "Clojure Lein", "project.clj"},
		{[]string{"Cargo.toml"}, "web: x", "Rust", "Cargo.toml"},
		{nil, "php: .", "PHP", "php entry"},
		{nil, "static: public", "Static", "static entry"},
		{[]string{"README"}, "web: ./run", "Generic", "Procfile"},
	}
	for _, tt := range tests {
		t.Run(tt.want+"/"+strings.Join(tt.files, ","), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pf, err := procfile.Parse(strings.NewReader(tt.procfile+"\n"), "Procfile")
			if err != nil {
				t.Fatal(err)
			}
			rt := Detect(dir, pf)
			if rt.Name != tt.want || rt.Trigger != tt.trigger {
				t.Errorf("Detect = %s (%s), want %s (%s)", rt.Name, rt.Trigger, tt.want, tt.trigger)
			}
			if rt.build == nil {
				t.Error("no builder")
			}
		})
	}
}

func TestIndentWriter(t *testing.T) {
	var b strings.Builder
	w := newIndentWriter(&b)
	for _, s := range []string{"one\ntw", "o\n", "\nthree"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	want := indent + "one\n" + indent + "two\n" + indent + "\n" + indent + "three"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
