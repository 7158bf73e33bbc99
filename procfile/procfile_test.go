package procfile

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		kinds    []string
		commands []string
		warnings int
	}{
		{"empty", "", []string{}, []string{}, 0},
		{"comments and blanks", "# hi\n\n   \n  # x\n", []string{}, []string{}, 0},
		{"web", "web: python app.py --port $PORT\n", []string{"web"}, []string{"python app.py --port $PORT"}, 0},
		{"no space", "worker:celery -A x", []string{"worker"}, []string{"celery -A x"}, 0},
		{"colon in command", "web: gunicorn -b 0.0.0.0:$PORT app:app", []string{"web"}, []string{"gunicorn -b 0.0.0.0:$PORT app:app"}, 0},
		{"crlf and bom", "\ufeffweb: a\r\nworker: b\r\n", []string{"web", "worker"}, []string{"a", "b"}, 0},
		{"order kept", "worker: w\nrelease: r\nweb: x\n", []string{"worker", "release", "web"}, []string{"w", "r", "x"}, 0},
		{"wsgi disables web", "web: x\nwsgi: app:app\n", []string{"wsgi"}, []string{"app:app"}, 1},
		{"rwsgi disables web", "rwsgi: config.ru\nweb: x\n", []string{"rwsgi"}, []string{"config.ru"}, 1},
		{"php keeps web", "php: public\nweb: x\n", []string{"php", "web"}, []string{"public", "x"}, 0},
		{"repeat last wins", "web: a\nworker: w\nweb: b\n", []string{"web", "worker"}, []string{"b", "w"}, 1},
		{"cron", "cron1: */5 * * * *   python  batch.py\n", []string{"cron1"}, []string{"python  batch.py"}, 0},
		{"kind chars", "my_worker-2: x\n", []string{"my_worker-2"}, []string{"x"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tt.in), "Procfile")
			if err != nil {
				t.Fatal(err)
			}
			var cmds []string
			for _, e := range p.Entries {
				cmds = append(cmds, e.Command)
			}
			kinds := []string{}
			for _, e := range p.Entries {
				kinds = append(kinds, e.Kind)
			}
			if got := kinds; !reflect.DeepEqual(got, tt.kinds) {
				t.Errorf("kinds = %q, want %q", got, tt.kinds)
			}
			if len(cmds) != 0 || len(tt.commands) != 0 {
				if !reflect.DeepEqual(cmds, tt.commands) {
					t.Errorf("commands = %q, want %q", cmds, tt.commands)
				}
			}
			if len(p.Warnings) != tt.warnings {
				t.Errorf("warnings = %q, want %d", p.Warnings, tt.warnings)
			}
			for _, w := range p.Warnings {
				if !strings.HasPrefix(w, "Procfile line ") {
					t.Errorf("warning %q does not name file and line", w)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		want string
	}{
		{"web: a\n\n# c\nworker\n", 4, "Procfile line 4: missing ':'"},
		{": x\n", 1, "missing process kind"},
		{"we b: x\n", 1, `invalid process kind "we b"`},
		{"wéb: x\n", 1, "invalid process kind"},
		{"web:   \n", 1, `empty command for "web"`},
		{"cron1: * * * *\n", 1, "five-field schedule"},
		{"cron1: * * * * *\n", 1, "five-field schedule"},
		{"web: a\ncron2: 61 * * * * x\n", 2, "out of range 0-59"},
	}
	for _, tt := range tests {
		_, err := Parse(strings.NewReader(tt.in), "Procfile")
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want *Error", tt.in, err)
			continue
		}
		if pe.Line != tt.line || pe.File != "Procfile" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %q (line %d), want line %d containing %q", tt.in, err, pe.Line, tt.line, tt.want)
		}
	}
}

func TestKindHelpers(t *testing.T) {
	tests := []struct {
		kind                    string
		wsgi, uwsgi, cron, long bool
	}{
		{"web", false, false, false, true},
		{"wsgi", true, true, false, true},
		{"jwsgi", true, true, false, true},
		{"rwsgi", true, true, false, true},
		{"php", false, true, false, true},
		{"static", false, false, false, false},
		{"release", false, false, false, false},
		{"preflight", false, false, false, false},
		{"cron1", false, false, true, false},
		{"cron-nightly", false, false, true, false},
		{"worker", false, false, false, true},
	}
	for _, tt := range tests {
		got := [4]bool{IsWSGIFamily(tt.kind), IsUWSGI(tt.kind), IsCron(tt.kind), IsLongRunning(tt.kind)}
		want := [4]bool{tt.wsgi, tt.uwsgi, tt.cron, tt.long}
		if got != want {
			t.Errorf("%s: got %v, want %v", tt.kind, got, want)
		}
	}
}

func TestProcfileAccessors(t *testing.T) {
	p, err := Parse(strings.NewReader("release: migrate\nstatic: public\nweb: serve\ncron1: 0 3 * * * backup\nworker: work\n"), "Procfile")
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := p.Entry("cron1"); !ok || e.Schedule.String() != "0 3 * * *" || e.Command != "backup" || e.Line != 4 {
		t.Errorf("Entry(cron1) = %+v, %v", e, ok)
	}
	if _, ok := p.Entry("nope"); ok {
		t.Error("Entry(nope) found")
	}
	var procs []string
	for _, e := range p.Processes() {
		procs = append(procs, e.Kind)
	}
	if !reflect.DeepEqual(procs, []string{"web", "worker"}) {
		t.Errorf("Processes = %q", procs)
	}
	only, _ := Parse(strings.NewReader("release: x\nstatic: .\n"), "Procfile")
	if len(only.Processes()) != 0 {
		t.Errorf("release+static: Processes = %v, want none", only.Processes())
	}
}

var update = flag.Bool("update", os.Getenv("PIKU_UPDATE_GOLDEN") == "1", "rewrite golden files")

// TestGolden parses testdata/*.Procfile and compares a description of the
// result with the .golden file beside it. Update with -update or
// PIKU_UPDATE_GOLDEN=1.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.Procfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var b strings.Builder
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(strings.NewReader(string(src)), f)
			if err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
			} else {
				for _, e := range p.Entries {
					fmt.Fprintf(&b, "%d %s long=%v: %q", e.Line, e.Kind, IsLongRunning(e.Kind), e.Command)
					if e.Schedule != nil {
						fmt.Fprintf(&b, " schedule=%q", e.Schedule)
					}
					b.WriteString("\n")
				}
				for _, w := range p.Warnings {
					fmt.Fprintf(&b, "warning: %s\n", w)
				}
			}
			golden := strings.TrimSuffix(f, ".Procfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with PIKU_UPDATE_GOLDEN=1 to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}
