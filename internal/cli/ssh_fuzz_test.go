package cli

import (
	"strings"
	"testing"
)

// FuzzSSHCommand: sshCommand splits what any SSH client sends. It must
// never panic, never pass shell operators on as words of a plain line, and
// split a line without quotes or escapes exactly like strings.Fields.
func FuzzSSHCommand(f *testing.F) {
	for _, s := range []string{
		"git-receive-pack 'app'", "git-upload-pack '/app.git'", `ps "my app"`, "config:set app 'A=b c'",
		"ls; id", "a && b", "$(id)", "`id`", "a\\ b", "'unterminated", `"x$y"`, "~/app", "#x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := sshCommand(line)
		if err != nil {
			if words != nil {
				t.Fatalf("%q: words %q with error %v", line, words, err)
			}
			return
		}
		if !strings.ContainsAny(line, `'"\`) {
			if strings.ContainsAny(line, ";&|<>`$(){}*?[]!") {
				t.Fatalf("%q: shell syntax accepted as %q", line, words)
			}
			fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
			if strings.Join(words, "\x00") != strings.Join(fields, "\x00") {
				t.Fatalf("%q: split into %q, want %q", line, words, fields)
			}
		}
	})
}
