package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSSHCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"git-receive-pack 'blog'", []string{"git-receive-pack", "blog"}, true},
		{"git-upload-pack '/blog.git'", []string{"git-upload-pack", "/blog.git"}, true},
		{"git-receive-pack '~/blog'", []string{"git-receive-pack", "~/blog"}, true},
		{"config:set blog A=1 'B=two words'", []string{"config:set", "blog", "A=1", "B=two words"}, true},
		{`config:set blog "C=it's"`, []string{"config:set", "blog", "C=it's"}, true},
		{"run blog -- ls -la", []string{"run", "blog", "--", "ls", "-la"}, true},
		{"config:set blog 'X=$HOME'", []string{"config:set", "blog", "X=$HOME"}, true},
		{"apps", []string{"apps"}, true},
		{"", nil, true},
		{"apps; rm -rf /", nil, false},
		{"apps && id", nil, false},
		{"apps | cat", nil, false},
		{"logs $(id)", nil, false},
		{"logs `id`", nil, false},
		{`logs "$HOME"`, nil, false},
		{"logs *", nil, false},
		{"logs > /tmp/x", nil, false},
		{"logs 'unterminated", nil, false},
		{"daemon", nil, false},
		{"service install", nil, false},
	}
	for _, tt := range tests {
		got, err := sshCommand(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("sshCommand(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("sshCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSSHGlobalFlagsRefused runs command lines as they come over SSH
// through run and checks piku's own flags are refused wherever they
// stand, before anything runs, and that an app's own arguments after "--"
// are left alone.
func TestSSHGlobalFlagsRefused(t *testing.T) {
	root := t.TempDir()
	other := t.TempDir()
	tests := []struct {
		line    string
		refused bool
	}{
		{"--root=" + other + " setup", true},
		{"--root " + other + " daemon", true},
		{"apps --root=" + other, true},
		{"apps --root " + other, true},
		{"config:get --root=" + other + " app KEY", true},
		{"apps", false},
		{"run app -- echo --root=x", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Setenv("PIKU_ROOT", root)
			t.Setenv("SSH_ORIGINAL_COMMAND", tt.line)
			var stdout, stderr strings.Builder
			code := run(nil, strings.NewReader(""), &stdout, &stderr)
			refused := code != 0 && strings.Contains(stderr.String(), "piku's own flags (--root) are set on the server")
			if refused != tt.refused {
				t.Errorf("exit %d, stderr %q; refused = %v, want %v", code, stderr.String(), refused, tt.refused)
			}
			if entries, _ := os.ReadDir(other); len(entries) != 0 {
				t.Errorf("%s was set up over SSH: %d entries", other, len(entries))
			}
		})
	}
}
