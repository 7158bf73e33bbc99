package deploy

import (
	"strings"
	"testing"
)

const (
	revA = "1111111111111111111111111111111111111111"
	revB = "2222222222222222222222222222222222222222"
	zero = "0000000000000000000000000000000000000000"
)

func TestParseRefUpdates(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		deploys []bool
		say     []string
		wantErr string
	}{
		{"new branch", zero + " " + revA + " refs/heads/main\n", []bool{true}, []string{"branch main at 1111111"}, ""},
		{"moved branch", revA + " " + revB + " refs/heads/feature/x\n", []bool{true}, []string{"branch feature/x at 2222222"}, ""},
		{"deleted branch", revA + " " + zero + " refs/heads/main\n", []bool{false}, []string{"branch main deleted: nothing to deploy"}, ""},
		{"tag", zero + " " + revA + " refs/tags/v1\n", []bool{false}, []string{"tag v1: tags are not deployed"}, ""},
		{"note", zero + " " + revA + " refs/notes/commits\n", []bool{false}, []string{"refs/notes/commits: only branches are deployed"}, ""},
		{"several and blank lines", "\n" + zero + " " + revA + " refs/tags/v1\n\n" + revA + " " + revB + " refs/heads/main", []bool{false, true}, nil, ""},
		{"missing field", revA + " refs/heads/main\n", nil, nil, "line 1"},
		{"not hex", "xyz " + revA + " refs/heads/main\n", nil, nil, "is not"},
		{"not a ref", revA + " " + revB + " main\n", nil, nil, "is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRefUpdates(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.deploys) {
				t.Fatalf("got %d updates, want %d", len(got), len(tt.deploys))
			}
			for i, u := range got {
				if u.Deploys() != tt.deploys[i] {
					t.Errorf("%v: Deploys() = %v", u, u.Deploys())
				}
				if tt.say != nil && u.Describe() != tt.say[i] {
					t.Errorf("Describe() = %q, want %q", u.Describe(), tt.say[i])
				}
			}
		})
	}
}

func TestSourceFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	repo := "/r/repos/app"
	if s := SourceFromEnv(repo, env(nil)); s.Quarantine != "" {
		t.Errorf("no quarantine: got %q", s.Quarantine)
	}
	s := SourceFromEnv(repo, env(map[string]string{"GIT_QUARANTINE_PATH": "/r/repos/app/objects/tmp_objdir-incoming-x"}))
	if s.Quarantine != "/r/repos/app/objects/tmp_objdir-incoming-x" {
		t.Errorf("quarantine = %q", s.Quarantine)
	}
	s = SourceFromEnv(repo, env(map[string]string{"GIT_OBJECT_DIRECTORY": "objects/incoming"}))
	if s.Quarantine != "/r/repos/app/objects/incoming" {
		t.Errorf("relative object dir = %q", s.Quarantine)
	}
	s = SourceFromEnv(repo, env(map[string]string{"GIT_OBJECT_DIRECTORY": "/r/repos/app/objects"}))
	if s.Quarantine != "" {
		t.Errorf("the repository's own objects are not a quarantine: %q", s.Quarantine)
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7 52311 22", "203.0.113.7"},
		{"2001:db8::1 52311 22", "2001:db8::1"},
		{"", ""},
		{"not-an-ip 1 22", ""},
	}
	for _, tt := range tests {
		if got := clientIP(tt.in); got != tt.want {
			t.Errorf("clientIP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
