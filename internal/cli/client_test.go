package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/piku/piku/internal/shell"
)

func TestClientTarget(t *testing.T) {
	remotes := map[string]string{"piku": "piku@example.com:blog", "staging": "ssh://deploy@stage.example.com:2222/blog-staging.git"}
	gitRemote := func(name string) (string, error) {
		if u, ok := remotes[name]; ok {
			return u, nil
		}
		return "", errors.New("no such remote")
	}
	noRemote := func(string) (string, error) { return "", errors.New("not a git repository") }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		remote func(string) (string, error)
		want   *target
		rest   []string
		err    bool
	}{
		{"config:set gets the app", []string{"config:set", "A=1"}, nil, gitRemote,
			&target{host: "piku@example.com", app: "blog"}, []string{"config:set", "blog", "A=1"}, false},
		{"apps takes no app", []string{"apps"}, nil, gitRemote,
			&target{host: "piku@example.com", app: "blog"}, []string{"apps"}, false},
		{"--remote picks another", []string{"--remote", "staging", "ps"}, nil, gitRemote,
			&target{host: "deploy@stage.example.com", port: "2222", app: "blog-staging"}, []string{"ps", "blog-staging"}, false},
		{"unknown --remote", []string{"--remote", "prod", "ps"}, nil, gitRemote, nil, nil, true},
		{"PIKU_SERVER wins", []string{"logs", "-f"}, map[string]string{"PIKU_SERVER": "piku@h", "PIKU_APP": "x"}, noRemote,
			&target{host: "piku@h", app: "x"}, []string{"logs", "x", "-f"}, false},
		{"no remote: local", []string{"ps", "blog"}, nil, noRemote, nil, []string{"ps", "blog"}, false},
		{"--local forces local", []string{"--local", "ps", "blog"}, nil, gitRemote, nil, []string{"--local", "ps", "blog"}, false},
		{"daemon is local", []string{"daemon"}, nil, gitRemote, nil, []string{"daemon"}, false},
		{"run keeps its words", []string{"run", "--", "ls", "--remote", "x"}, nil, gitRemote,
			&target{host: "piku@example.com", app: "blog"}, []string{"run", "blog", "--", "ls", "--remote", "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := clientTarget(tt.args, env(tt.env), tt.remote)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if tt.err {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("target = %+v, want %+v", got, tt.want)
			}
			if tt.want != nil && !reflect.DeepEqual(rest, tt.rest) {
				t.Errorf("args = %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestShellQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"plain", "two words", "it's", "$HOME", "a;b", "", "K=v w", `back\slash`} {
		words, err := sshCommand("echo " + shell.Quote(s))
		if err != nil || len(words) != 2 || words[1] != s {
			t.Errorf("quote(%q) -> %q, %v", s, words, err)
		}
	}
}

// FuzzParseRemote: whatever a remote URL holds, what reaches ssh is a host
// that cannot pass for an option and a numeric port.
func FuzzParseRemote(f *testing.F) {
	for _, s := range []string{
		"piku@server:app", "ssh://piku@server:2222/app.git", "server:~/app", "-oProxyCommand=x:app",
		"ssh://-oProxyCommand=x/app", "ssh://piku@[::1]:22/app", "a b:app", "nohost", ":app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		tg, err := parseRemote(remote)
		if err != nil {
			return
		}
		if tg.host == "" || strings.HasPrefix(tg.host, "-") || strings.ContainsAny(tg.host, " \t\n\r\x00") {
			t.Fatalf("%q: host %q", remote, tg.host)
		}
		if strings.Trim(tg.port, "0123456789") != "" {
			t.Fatalf("%q: port %q", remote, tg.port)
		}
	})
}

func TestParseRemoteRefusesOptions(t *testing.T) {
	for _, remote := range []string{"-oProxyCommand=touch /tmp/x:app", "ssh://-oProxyCommand=x/app", "ssh://piku@server:22x/app"} {
		if tg, err := parseRemote(remote); err == nil {
			t.Errorf("parseRemote(%q) = %+v, want an error", remote, tg)
		}
	}
}

func TestLiveTopGetsATerminal(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"top"}, true},
		{[]string{"top", "blog", "--interval", "2s"}, true},
		{[]string{"top", "--once"}, false},
		{[]string{"top", "--json"}, false},
		{[]string{"top", "--once=true", "blog"}, false},
		{[]string{"ps", "blog"}, false},
	}
	for _, tt := range tests {
		if got := liveTop(tt.args); got != tt.want {
			t.Errorf("liveTop(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
