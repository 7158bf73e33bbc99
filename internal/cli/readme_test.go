package cli

import (
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// readmeRow is a `| `piku ...` | ... |` row of the README's command
// table: its synopsis, with \| unescaped.
var readmeRow = regexp.MustCompile("(?m)^\\| `(piku [^`]*)` \\|")

// TestReadmeCommandTable checks the README's command table against the
// commands' own help, so they cannot drift apart: every command has a row
// whose synopsis starts with the command's usage line, every flag of the
// command is in that synopsis (the daemon's in the settings table), and
// every row names a command.
func TestReadmeCommandTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	rows := map[string]string{} // command name -> synopsis
	for _, m := range readmeRow.FindAllStringSubmatch(readme, -1) {
		syn := strings.ReplaceAll(m[1], `\|`, "|")
		name, _, _ := strings.Cut(strings.TrimPrefix(syn, "piku "), " ")
		if _, dup := rows[name]; dup {
			t.Errorf("README: two rows for %q", name)
		}
		rows[name] = syn
	}
	root := newCLI(nil, io.Discard, io.Discard).rootCommand()
	root.InitDefaultHelpCmd()
	commands := map[string]bool{}
	for _, cmd := range root.Commands() {
		if cmd.Hidden {
			continue
		}
		commands[cmd.Name()] = true
		t.Run(cmd.Name(), func(t *testing.T) {
			syn, ok := rows[cmd.Name()]
			use := "piku " + cmd.Use
			if !ok {
				t.Fatalf("README: no row for %q; add one starting with `%s`", cmd.Name(), use)
			}
			if !strings.HasPrefix(syn, use) {
				t.Errorf("README row `%s` does not start with the usage line `%s`", syn, use)
			}
			cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Name == "help" {
					return
				}
				if cmd.Name() == "daemon" {
					if !strings.Contains(readme, "| `--"+f.Name+"` |") {
						t.Errorf("README: the daemon's settings table has no row for --%s", f.Name)
					}
					return
				}
				if !mentionsFlag(syn, f) {
					t.Errorf("README row `%s` does not show its flag --%s", syn, f.Name)
				}
			})
		})
	}
	for name := range rows {
		if !commands[name] {
			t.Errorf("README: the row for %q names no command (the commands are %s)", name, strings.Join(sortedKeys(commands), ", "))
		}
	}
}

func mentionsFlag(synopsis string, f *pflag.Flag) bool {
	words := strings.FieldsFunc(synopsis, func(r rune) bool { return strings.ContainsRune(" []|=", r) })
	return slices.Contains(words, "--"+f.Name) || (f.Shorthand != "" && slices.Contains(words, "-"+f.Shorthand))
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
