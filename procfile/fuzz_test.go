package procfile

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkErr fails unless err is nil, or an *Error with a line from 1 to the
// number of lines in the input.
func checkErr(t *testing.T, in string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if pe.Line < 1 || pe.Line > strings.Count(in, "\n")+1 {
		t.Fatalf("error %v: line %d outside the input's %d lines", err, pe.Line, strings.Count(in, "\n")+1)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"web: x\n", "wsgi: a:b\nweb: c\n", "cron1: */5 * * * * x\n", "# c\n\nworker:w\nworker: v", "x", ":", "cron: 1-2/3,4 * * * 7 y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := Parse(strings.NewReader(in), "Procfile")
		checkErr(t, in, err)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range p.Entries {
			if !validKind(e.Kind) || e.Command == "" || e.Line < 1 || seen[e.Kind] {
				t.Fatalf("bad entry %+v", e)
			}
			seen[e.Kind] = true
			if IsCron(e.Kind) != (e.Schedule != nil) {
				t.Fatalf("entry %+v: schedule does not match kind", e)
			}
		}
	})
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 1-3 1,15 */2 1-5", "0 0 29 2 *", "0 0 13 * 5", "5/20 * * * 7", "60 * * * *"} {
		f.Add(s, int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		s, err := ParseSchedule(spec)
		if err != nil {
			return
		}
		back, err := ParseSchedule(s.String())
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("String %q does not parse back: %v", s, err)
		}
		after := time.Unix(unix%(1<<35), 0).UTC()
		next := s.Next(after)
		if next.IsZero() {
			t.Fatalf("%q.Next(%s) found nothing", s, after)
		}
		if !next.After(after) || next.Second() != 0 {
			t.Fatalf("%q.Next(%s) = %s", s, after, next)
		}
		// Nothing matches in between: the minute before next, if after
		// after, must not be a match.
		if prev := next.Add(-time.Minute); prev.After(after) && s.Next(prev.Add(-time.Minute)) != prev && s.Next(prev.Add(-time.Minute)).Before(next) {
			t.Fatalf("%q: %s matches before %s", s, s.Next(prev.Add(-time.Minute)), next)
		}
	})
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x y'\n", "C=\"a\\\"b $A ${B}\"\n", "D=\\$x # y\n", "E='multi\nline'\n", "=", "A=${", "A=\"\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		lookup := lookupMap(map[string]string{"HOME": "/h"})
		e, err := ParseEnv(strings.NewReader(in), "ENV", lookup)
		checkErr(t, in, err)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteEnv(&buf, e); err != nil {
			t.Fatal(err)
		}
		back, err := ParseEnv(bytes.NewReader(buf.Bytes()), "ENV", lookup)
		if err != nil {
			t.Fatalf("written env does not parse: %v\n%q", err, buf.String())
		}
		if !reflect.DeepEqual(back.Environ(), e.Environ()) {
			t.Fatalf("round trip:\n got %q\nwant %q\nfile %q", back.Environ(), e.Environ(), buf.String())
		}
	})
}

func FuzzParseScaling(f *testing.F) {
	for _, s := range []string{"web:1\n", "worker = 2\r\n# c\n", "a:-1", "b:1001", "c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseScaling(strings.NewReader(in), "SCALING")
		checkErr(t, in, err)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteScaling(&buf, s); err != nil {
			t.Fatal(err)
		}
		back, err := ParseScaling(&buf, "SCALING")
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip = %v, %v; want %v", back, err, s)
		}
	})
}
