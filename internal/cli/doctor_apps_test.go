package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piku/piku/internal/service"
)

type fakeResolver map[string][]string

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestHostCheck(t *testing.T) {
	res := fakeResolver{"here.example": {"203.0.113.5"}, "v6.example": {"2001:db8::1"}, "away.example": {"198.51.100.7"}}
	local := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("203.0.113.5"), net.ParseIP("2001:db8::1")}
	for _, tc := range []struct {
		host   string
		ok     bool
		detail string
	}{
		{"here.example", true, "resolves to 203.0.113.5, an address of this machine"},
		{"v6.example", true, "resolves to 2001:db8::1, an address of this machine"},
		{"away.example", false, "resolves to 198.51.100.7, none of them an address of this machine"},
		{"missing.example", false, "does not resolve: point its DNS at this server"},
	} {
		ch := hostCheck("blog", tc.host, res, local)
		if ch.OK != tc.ok || !strings.HasPrefix(ch.Detail, tc.detail) || ch.Name != "app blog: host "+tc.host {
			t.Errorf("%s: %+v, want ok=%v %q", tc.host, ch, tc.ok, tc.detail)
		}
	}
}

func TestUnitCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "piku.service")
	if ch := unitCheck(path, "/srv/piku"); !ch.OK || !strings.HasPrefix(ch.Detail, "not installed") {
		t.Errorf("no unit: %+v", ch)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	unit, err := service.Unit(service.Config{Executable: exe, User: "deploy", Root: "/srv/piku"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if ch := unitCheck(path, "/srv/piku"); !ch.OK {
		t.Errorf("the unit install writes: %+v", ch)
	}
	// An older unit, without what this binary's has (Delegate=yes).
	old := strings.Replace(unit, "Delegate=yes\n", "", 1)
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if ch := unitCheck(path, "/srv/piku"); ch.OK || !strings.Contains(ch.Detail, "run `piku service install` again") {
		t.Errorf("an older unit: %+v", ch)
	}
}
