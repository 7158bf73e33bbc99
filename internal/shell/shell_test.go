package shell

import (
	"os/exec"
	"strings"
	"testing"
)

var words = []string{
	"", "plain", "with space", "it's", `back\slash`, `"double"`, "$HOME", "`id`", "$(id)", "a;b", "a&&b",
	"*", "?", "[a]", "~", "~root", "#comment", "!", "a\nb", "\t", "=", "A=b", "%", "-n", "-e", "é", "'", "''",
}

// TestQuoteRoundTrip runs every word through /bin/sh and checks that the
// shell hands it back unchanged: the behaviour, not the spelling.
func TestQuoteRoundTrip(t *testing.T) {
	for _, w := range words {
		out, err := exec.Command("/bin/sh", "-c", `printf '%s\0' `+Quote(w)).Output()
		if err != nil {
			t.Fatalf("sh -c with %q: %v", Quote(w), err)
		}
		if got := strings.TrimSuffix(string(out), "\x00"); got != w {
			t.Errorf("Quote(%q) = %s: sh gave back %q", w, Quote(w), got)
		}
	}
}

func TestJoinRoundTrip(t *testing.T) {
	out, err := exec.Command("/bin/sh", "-c", `printf '%s\0' `+Join(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("sh gave back %d words, want %d: %q", len(got), len(words), got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: sh gave back %q, want %q", i, got[i], words[i])
		}
	}
}

// TestQuoteAssignment checks that a quoted A=b in command position is run
// as a command, not taken for an assignment.
func TestQuoteAssignment(t *testing.T) {
	err := exec.Command("/bin/sh", "-c", Quote("A=b")+" 2>/dev/null").Run()
	if err == nil {
		t.Fatal("sh ran 'A=b' as an assignment; want it looked up as a command (and not found)")
	}
}

func FuzzQuote(f *testing.F) {
	for _, w := range words {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, w string) {
		if strings.ContainsRune(w, 0) {
			return // no shell word can hold NUL
		}
		out, err := exec.Command("/bin/sh", "-c", `printf '%s' `+Quote(w)).Output()
		if err != nil {
			t.Fatalf("sh -c with %q: %v", Quote(w), err)
		}
		if string(out) != w {
			t.Errorf("Quote(%q) = %s: sh gave back %q", w, Quote(w), out)
		}
	})
}
