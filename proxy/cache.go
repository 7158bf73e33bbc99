package proxy

import (
	"bytes"
	"container/list"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cache is an in-memory LRU of backend responses, bounded by the bytes of
// the bodies and headers it holds. It stands in for nginx's proxy_cache.
type cache struct {
	cfg CacheConfig
	now func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	byKey map[string]*list.Element
	size  int64
}

type entry struct {
	key     string
	status  int
	header  http.Header
	body    []byte
	stored  time.Time
	expires time.Time
	used    time.Time
	size    int64
}

func newCache(cfg CacheConfig) *cache {
	cfg.Prefixes = slices.Clone(cfg.Prefixes)
	return &cache{cfg: cfg, now: time.Now, lru: list.New(), byKey: map[string]*list.Element{}}
}

func (c *cache) sameConfig(o *CacheConfig) bool {
	a, b := c.cfg, *o
	return slices.Equal(a.Prefixes, b.Prefixes) && a.Size == b.Size && a.Time == b.Time &&
		a.Redirects == b.Redirects && a.Any == b.Any && a.Control == b.Control && a.Expiry == b.Expiry
}

// applies reports whether r may be answered from the cache.
func (c *cache) applies(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("Upgrade") != "" || r.Header.Get("Range") != "" {
		return false
	}
	for _, p := range c.cfg.Prefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			return true
		}
	}
	return false
}

func cacheKey(r *http.Request) string {
	host := strings.ToLower(hostOf(r.Host))
	// Responses are stored as sent, compressed (compress.go) or not.
	return host + " " + negotiate(r.Header["Accept-Encoding"]).String() + " " + r.URL.RequestURI()
}

// Len returns the number of entries and the bytes they hold.
func (c *cache) Len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}

func (c *cache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	now := c.now()
	if now.After(e.expires) || c.cfg.Expiry > 0 && now.Sub(e.used) > c.cfg.Expiry {
		c.remove(el)
		return nil
	}
	e.used = now
	c.lru.MoveToFront(el)
	return e
}

func (c *cache) put(e *entry) {
	if e.size > c.cfg.Size {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[e.key]; ok {
		c.remove(el)
	}
	for c.size+e.size > c.cfg.Size {
		c.remove(c.lru.Back())
	}
	c.byKey[e.key] = c.lru.PushFront(e)
	c.size += e.size
}

func (c *cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.byKey, e.key)
	c.size -= e.size
}

// withCredentials reports whether r carries a client's credentials
// (Authorization or Cookie). Such a request is never answered from the
// cache, and its response is stored only when the backend says it may be
// shared (RFC 9111 section 3.5): a shared cache must not hand one user's
// page to another.
func withCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != ""
}

// ttl is how long a response with status code and header h may be kept;
// 0 = not at all. The backend's Cache-Control max-age wins over the
// configured times, as with nginx. A response to a request with
// credentials is kept only when it is marked public, s-maxage or
// must-revalidate.
func (c *cache) ttl(code int, h http.Header, credentials bool) time.Duration {
	if h.Get("Set-Cookie") != "" {
		return 0
	}
	if v := h.Values("Vary"); len(v) > 0 {
		for _, f := range strings.Split(strings.Join(v, ","), ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return 0
			}
		}
	}
	maxAge := -1
	shared := false
	for _, d := range strings.Split(strings.ToLower(strings.Join(h.Values("Cache-Control"), ",")), ",") {
		d = strings.TrimSpace(d)
		switch {
		case d == "no-store" || d == "no-cache" || d == "private" ||
			strings.HasPrefix(d, "no-cache=") || strings.HasPrefix(d, "private="):
			return 0
		case d == "public" || d == "must-revalidate":
			shared = true
		case strings.HasPrefix(d, "s-maxage="):
			shared = true
			if n, err := strconv.Atoi(d[len("s-maxage="):]); err == nil {
				maxAge = n
			}
		case strings.HasPrefix(d, "max-age=") && maxAge < 0:
			if n, err := strconv.Atoi(d[len("max-age="):]); err == nil {
				maxAge = n
			}
		}
	}
	if credentials && !shared {
		return 0
	}
	if maxAge >= 0 {
		return time.Duration(maxAge) * time.Second
	}
	switch code {
	case http.StatusOK:
		return c.cfg.Time
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return c.cfg.Redirects
	}
	return c.cfg.Any
}

// serve answers r from the cache, or from next while keeping a copy. It
// reports whether the answer came from the cache.
func (c *cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler) (hit bool) {
	key := cacheKey(r)
	credentials := withCredentials(r)
	var e *entry
	if !credentials { // else answered by the app, which knows who this is
		e = c.get(key)
	}
	if e != nil {
		h := w.Header()
		for k, v := range e.header {
			h[k] = slices.Clone(v)
		}
		h.Set("X-Cache", "HIT")
		h.Set("Age", strconv.Itoa(int(c.now().Sub(e.stored)/time.Second)))
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(e.status)
		if r.Method != http.MethodHead {
			w.Write(e.body)
		}
		return true
	}
	rec := &cacheRecorder{ResponseWriter: w, c: c, credentials: credentials}
	next.ServeHTTP(rec, r)
	if r.Method != http.MethodGet || rec.ttl <= 0 || rec.overflow {
		return false
	}
	if cl := rec.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(rec.body.Len()) {
		return false // the body was cut short
	}
	now := c.now()
	e = &entry{key: key, status: rec.status, header: rec.header, body: rec.body.Bytes(),
		stored: now, used: now, expires: now.Add(rec.ttl)}
	e.size = int64(len(e.body)) + int64(len(key)) + 64
	for k, v := range e.header {
		e.size += int64(len(k))
		for _, s := range v {
			e.size += int64(len(s)) + 16
		}
	}
	c.put(e)
	return false
}

// cacheRecorder passes a response through while keeping a copy of it.
type cacheRecorder struct {
	http.ResponseWriter
	c           *cache
	credentials bool // the request carried Authorization or Cookie
	status      int
	header      http.Header
	ttl         time.Duration
	body        bytes.Buffer
	overflow    bool
}

func (rec *cacheRecorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		h := rec.ResponseWriter.Header()
		rec.ttl = rec.c.ttl(code, h, rec.credentials)
		if rec.ttl > 0 && h.Get("Cache-Control") == "" && rec.c.cfg.Control > 0 {
			h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(rec.c.cfg.Control/time.Second)))
		}
		h.Set("X-Cache", "MISS")
		rec.header = h.Clone()
		rec.header.Del("X-Cache")
		rec.header.Del("Date")
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *cacheRecorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.ttl > 0 && !rec.overflow {
		if int64(rec.body.Len()+len(p)) > rec.c.cfg.Size {
			rec.overflow = true
			rec.body = bytes.Buffer{}
		} else {
			rec.body.Write(p)
		}
	}
	return rec.ResponseWriter.Write(p)
}

func (rec *cacheRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }
