package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/piku/piku/internal/testdeps"
)

func cloudflareLists(t *testing.T, v4, v6 string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ips-v4":
			w.Write([]byte(v4))
		case "/ips-v6":
			w.Write([]byte(v6))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchCloudflareRanges(t *testing.T) {
	good := cloudflareLists(t, "198.51.100.0/24\n203.0.113.0/24\n", "2001:db8::/32\n")
	got, err := FetchCloudflareRanges(context.Background(), good.Client(), good.URL+"/ips-v4", good.URL+"/ips-v6")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}; !slices.Equal(got, want) {
		t.Errorf("ranges %q, want %q", got, want)
	}
	bad := cloudflareLists(t, "198.51.100.0/24\n<html>oops</html>\n", "")
	if _, err := FetchCloudflareRanges(context.Background(), bad.Client(), bad.URL+"/ips-v4"); err == nil {
		t.Error("a page that is not a list was taken")
	}
	if _, err := FetchCloudflareRanges(context.Background(), bad.Client(), bad.URL+"/missing"); err == nil {
		t.Error("a 404 was taken")
	}
	s := New(Options{})
	if err := s.SetCloudflareRanges(nil); err == nil {
		t.Error("an empty list replaced the built-in one")
	}
	if !s.isCloudflare(net.ParseIP("173.245.48.1")) {
		t.Error("the built-in list is not in use")
	}
}

// TestRefreshCloudflare: once a route uses the ACL, the published lists
// replace the built-in one; until then nothing is fetched.
func TestRefreshCloudflare(t *testing.T) {
	fetched := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched <- struct{}{}
		w.Write([]byte("198.51.100.0/24\n"))
	}))
	t.Cleanup(srv.Close)
	s := New(Options{})
	s.SetRoute(Route{App: "a", Hosts: []string{"a.test"}, CloudflareACL: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RefreshCloudflare(ctx, srv.Client(), srv.URL+"/ips-v4") }()
	wait := testdeps.Waiting(t) // every wait ends just before the test's timeout
	select {
	case <-fetched:
	case <-wait.Done():
		t.Fatal("the list was not fetched")
	}
	for !s.isCloudflare(net.ParseIP("198.51.100.7")) {
		select {
		case <-wait.Done():
			t.Fatal("the fetched list is not in use")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if s.isCloudflare(net.ParseIP("173.245.48.1")) {
		t.Error("the built-in list is still in use")
	}
	rt := &route{Route: Route{CloudflareACL: true}}
	if !rt.allowed(net.ParseIP("198.51.100.7"), s.isCloudflare) || rt.allowed(net.ParseIP("192.0.2.1"), s.isCloudflare) {
		t.Error("the ACL does not follow the fetched list")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
