package procfile

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseEnv(t *testing.T) {
	boot := lookupMap(map[string]string{"HOME": "/home/piku", "APP": "blog"})
	tests := []struct {
		name string
		in   string
		want [][2]string
	}{
		{"empty", "", nil},
		{"simple", "A=1\nB = two \n", [][2]string{{"A", "1"}, {"B", "two"}}},
		{"comments blanks", "# c\n\n  # d\nA=1\n", [][2]string{{"A", "1"}}},
		{"export", "export A=1\nexport\tB=2\n", [][2]string{{"A", "1"}, {"B", "2"}}},
		{"crlf", "A=1\r\nB='x'\r\n", [][2]string{{"A", "1"}, {"B", "x"}}},
		{"empty value", "A=\nB=''\nC=\"\"\n", [][2]string{{"A", ""}, {"B", ""}, {"C", ""}}},
		{"hash kept in unquoted", "URL=http://x/#top\nP=a #b\n", [][2]string{{"URL", "http://x/#top"}, {"P", "a #b"}}},
		{"comment after quotes", "A='x y' # c\nB=\"z\"   \n", [][2]string{{"A", "x y"}, {"B", "z"}}},
		{"equals in value", "DSN=postgres://u:p@h/db?sslmode=require\n", [][2]string{{"DSN", "postgres://u:p@h/db?sslmode=require"}}},
		{"expand earlier", "A=1\nB=$A-${A}\n", [][2]string{{"A", "1"}, {"B", "1-1"}}},
		{"expand bootstrap", "D=$HOME/data/${APP}\n", [][2]string{{"D", "/home/piku/data/blog"}}},
		{"file wins over bootstrap", "HOME=/x\nD=$HOME\n", [][2]string{{"HOME", "/x"}, {"D", "/x"}}},
		{"unknown is kept as written", "A=x${NOPE}y$NOPE\nP=pa$word\n", [][2]string{{"A", "x${NOPE}y$NOPE"}, {"P", "pa$word"}}},
		{"escaped dollar", "A=\\$HOME\nB=\"\\$HOME\"\n", [][2]string{{"A", "$HOME"}, {"B", "$HOME"}}},
		{"lone dollar", "A=$ 5$\nB=$1\n", [][2]string{{"A", "$ 5$"}, {"B", "$1"}}},
		{"single literal", "A='$HOME \\n \"x\"'\n", [][2]string{{"A", `$HOME \n "x"`}}},
		{"double escapes", `A="a\"b\\c\$d\ne $APP"` + "\n", [][2]string{{"A", `a"b\c$d\ne blog`}}},
		{"multiline", "A='l1\nl2'\nB=\"x\ny\"\nC=3\n", [][2]string{{"A", "l1\nl2"}, {"B", "x\ny"}, {"C", "3"}}},
		{"repeat keeps place", "A=1\nB=2\nA=3\n", [][2]string{{"A", "3"}, {"B", "2"}}},
		{"self reference without a base", "PATH=/app/bin:$PATH\n", [][2]string{{"PATH", "/app/bin:$PATH"}}},
		{"backslash kept unquoted", `P=C:\dir\n`, [][2]string{{"P", `C:\dir\n`}}},
		{"no final newline", "A=1", [][2]string{{"A", "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEnv(strings.NewReader(tt.in), "ENV", boot)
			if err != nil {
				t.Fatal(err)
			}
			var got [][2]string
			for _, k := range e.Keys() {
				v, _ := e.Get(k)
				got = append(got, [2]string{k, v})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseEnvErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		want string
	}{
		{"A=1\nJUSTAKEY\n", 2, "missing '='"},
		{"=1\n", 1, `invalid key ""`},
		{"1A=1\n", 1, "invalid key"},
		{"A-B=1\n", 1, "invalid key"},
		{"A B=1\n", 1, "invalid key"},
		{"A=1\nB='open\n\n", 2, "unterminated single quote"},
		{"A=\"open\nmore\n", 1, "unterminated double quote"},
		{"A='x' y\n", 1, "unexpected text"},
		{"A='x\ny' z\n", 2, "unexpected text"},
		{"A=${B\n", 1, "unterminated"},
		{"A=${B-x}\n", 1, "invalid variable name"},
		{"A=\"${}\"\n", 1, "invalid variable name"},
	}
	for _, tt := range tests {
		_, err := ParseEnv(strings.NewReader(tt.in), "ENV", nil)
		var pe *Error
		if !errors.As(err, &pe) || pe.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseEnv(%q) = %v, want *Error on line %d containing %q", tt.in, err, tt.line, tt.want)
		}
	}
}

// TestParseEnvPikuFiles reads ENV files as Python piku users write them.
func TestParseEnvPikuFiles(t *testing.T) {
	in := `# piku settings
NGINX_SERVER_NAME=example.com www.example.com
NGINX_STATIC_PATHS=/static:static,/media:/srv/media
PORT=8000
UWSGI_PROCESSES=2
DATABASE_URL=postgres://piku:secret@localhost/blog
DATA_DIR=$HOME/data
`
	e, err := ParseEnv(strings.NewReader(in), "ENV", lookupMap(map[string]string{"HOME": "/home/piku"}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NGINX_SERVER_NAME":  "example.com www.example.com",
		"NGINX_STATIC_PATHS": "/static:static,/media:/srv/media",
		"PORT":               "8000",
		"UWSGI_PROCESSES":    "2",
		"DATABASE_URL":       "postgres://piku:secret@localhost/blog",
		"DATA_DIR":           "/home/piku/data",
	}
	if !reflect.DeepEqual(e.Map(), want) {
		t.Errorf("got %v", e.Map())
	}
}

func TestEnvMethods(t *testing.T) {
	var e Env
	e.Set("B", "1")
	e.Set("A", "2")
	e.Set("B", "3")
	if got := e.Environ(); !reflect.DeepEqual(got, []string{"B=3", "A=2"}) {
		t.Errorf("Environ = %q", got)
	}
	e.Unset("B")
	e.Unset("nope")
	if e.Len() != 1 || !reflect.DeepEqual(e.Keys(), []string{"A"}) {
		t.Errorf("after Unset: %q", e.Keys())
	}
	o := NewEnv()
	o.Set("C", "4")
	o.Set("A", "5")
	e.Merge(o)
	if got := e.Environ(); !reflect.DeepEqual(got, []string{"A=5", "C=4"}) {
		t.Errorf("Merge = %q", got)
	}
	if _, ok := e.Get("B"); ok {
		t.Error("B still set")
	}
}

func TestWriteEnvRoundTrip(t *testing.T) {
	values := []string{"", "plain", "with space", " lead", "trail ", "a#b", "#x", "'q'", `"dq"`, "it's", `it's "both"`,
		"$HOME", "${X}", `back\slash`, `\$`, "multi\nline", "it's\nmulti", "cr\r\nlf", "tab\tx", "\x00nul", "ünï", "=", "a='b'", "x\\"}
	e := NewEnv()
	for i, v := range values {
		e.Set("K"+string(rune('A'+i)), v)
	}
	var buf bytes.Buffer
	if err := WriteEnv(&buf, e); err != nil {
		t.Fatal(err)
	}
	back, err := ParseEnv(&buf, "ENV", lookupMap(map[string]string{"HOME": "/h", "X": "x"}))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(back.Environ(), e.Environ()) {
		t.Errorf("round trip:\n got %q\nwant %q", back.Environ(), e.Environ())
	}
	plain := NewEnv()
	plain.Set("PORT", "8000")
	plain.Set("NGINX_SERVER_NAME", "a.com b.com")
	buf.Reset()
	_ = WriteEnv(&buf, plain)
	if buf.String() != "PORT=8000\nNGINX_SERVER_NAME=a.com b.com\n" {
		t.Errorf("plain values are quoted: %q", buf.String())
	}
	bad := NewEnv()
	bad.Set("1X", "y")
	if err := WriteEnv(&buf, bad); err == nil {
		t.Error("invalid key written")
	}
}
