package proxy

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// serveStatic answers r from the route's static paths or static site and
// reports whether it did. A request under a static path prefix is always
// answered there (with the catch-all or a 404 when no file matches); the
// static site falls through to the backends when it has no such file.
func (rt *route) serveStatic(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	for _, sp := range rt.statics {
		rel, ok := underPrefix(p, sp.Prefix)
		if !ok {
			continue
		}
		if !getOrHead(w, r) {
			return true
		}
		if serveFile(w, r, sp.Dir, rel, rt.Compress) || rt.serveCatchAll(w, r) {
			return true
		}
		page(w, http.StatusNotFound)
		return true
	}
	if rt.StaticSite == "" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if len(rt.backends) > 0 {
			return false
		}
		return !getOrHead(w, r)
	}
	if serveFile(w, r, rt.StaticSite, strings.TrimPrefix(p, "/"), rt.Compress) {
		return true
	}
	if len(rt.backends) > 0 {
		return false
	}
	if !rt.serveCatchAll(w, r) {
		page(w, http.StatusNotFound)
	}
	return true
}

// serveCatchAll serves the route's NGINX_CATCH_ALL path, looked up like a
// request for it.
func (rt *route) serveCatchAll(w http.ResponseWriter, r *http.Request) bool {
	if rt.CatchAll == "" {
		return false
	}
	for _, sp := range rt.statics {
		if rel, ok := underPrefix(rt.CatchAll, sp.Prefix); ok {
			return serveFile(w, r, sp.Dir, rel, rt.Compress)
		}
	}
	if rt.StaticSite != "" {
		return serveFile(w, r, rt.StaticSite, strings.TrimPrefix(rt.CatchAll, "/"), rt.Compress)
	}
	return false
}

// underPrefix returns the part of the URL path p below prefix, if p is
// prefix itself or below it.
func underPrefix(p, prefix string) (string, bool) {
	if prefix == "/" {
		return strings.TrimLeft(p, "/"), true
	}
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || rest != "" && rest[0] != '/' {
		return "", false
	}
	return strings.TrimLeft(rest, "/"), true
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	page(w, http.StatusMethodNotAllowed)
	return false
}

// serveFile serves the first of rel, rel.html and rel/index.html found in
// dir, like nginx's try_files, and reports whether one was. Lookups go
// through os.Root, so neither ".." nor a symbolic link leads out of dir.
// gz allows compressing it (Route.Compress).
func serveFile(w http.ResponseWriter, r *http.Request, dir, rel string, gz bool) bool {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer root.Close()
	candidates := []string{rel, rel + ".html", path.Join(rel, "index.html")}
	if rel == "" {
		candidates = []string{"index.html"}
	}
	for _, name := range candidates {
		if name == "" || strings.HasSuffix(name, "/.html") {
			continue
		}
		f, err := root.Open(filepath.FromSlash(name))
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			continue
		}
		sendFile(w, r, f, st, gz)
		f.Close()
		return true
	}
	return false
}

// gzipMax is the largest file compressed on the fly.
const gzipMax = 4 << 20

// sendFile writes f with http.ServeContent (conditional requests, ranges),
// gzip-compressed when gz allows it, the client accepts it and the type
// is text.
func sendFile(w http.ResponseWriter, r *http.Request, f *os.File, st fs.FileInfo, gz bool) {
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(st.Name()))
	if ctype == "" {
		var buf [512]byte
		n, _ := io.ReadFull(f, buf[:])
		ctype = http.DetectContentType(buf[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			page(w, http.StatusInternalServerError)
			return
		}
	}
	h.Set("Content-Type", ctype)
	etag := fmt.Sprintf(`"%x-%x"`, st.ModTime().Unix(), st.Size())
	if gz && compressible(ctype) && st.Size() >= 256 && st.Size() <= gzipMax {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
			if _, err := io.Copy(zw, f); err == nil && zw.Close() == nil {
				h.Set("Content-Encoding", "gzip")
				h.Set("ETag", strings.TrimSuffix(etag, `"`)+`-gz"`)
				http.ServeContent(w, r, st.Name(), st.ModTime(), bytes.NewReader(buf.Bytes()))
				return
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				page(w, http.StatusInternalServerError)
				return
			}
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

// acceptsGzip reports whether r's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
		}
	}
	return false
}
