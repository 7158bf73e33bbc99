package cli

import (
	"reflect"
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
