package proxy

import (
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Maintenance puts an app's route in maintenance: every request gets a
// 503 with Retry-After, whatever the app's processes do.
type Maintenance struct {
	// Message is shown to clients; "" says the app is down for
	// maintenance.
	Message string
	// Page is the HTML answered to browsers (the app's own
	// maintenance.html); nil: a page made of Message.
	Page []byte
	// RetryAfter is the Retry-After sent; 0: DefaultMaintenanceRetry.
	RetryAfter time.Duration
}

// DefaultMaintenanceRetry is the Retry-After of a route in maintenance.
const DefaultMaintenanceRetry = 60 * time.Second

// defaultMaintenanceMessage is the message of a maintenance without one.
const defaultMaintenanceMessage = "The app is down for maintenance. Please try again later."

// serveMaintenance answers r for a route in maintenance: HTML to
// browsers (Accept: text/html), JSON to clients that accept
// application/json, a short text otherwise. HEAD gets the header alone.
func serveMaintenance(w http.ResponseWriter, r *http.Request, m *Maintenance) {
	msg := m.Message
	if msg == "" {
		msg = defaultMaintenanceMessage
	}
	retry := m.RetryAfter
	if retry <= 0 {
		retry = DefaultMaintenanceRetry
	}
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	var body []byte
	accept := r.Header.Get("Accept")
	switch {
	case acceptsType(accept, "text/html"):
		h.Set("Content-Type", "text/html; charset=utf-8")
		body = m.Page
		if body == nil {
			e := html.EscapeString(msg)
			body = []byte("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>503 Service Unavailable</title></head>" +
				"<body><h1>503 Service Unavailable</h1><p>" + e + "</p><hr><p>piku</p></body></html>\n")
		}
	case acceptsType(accept, "application/json"):
		h.Set("Content-Type", "application/json")
		body, _ = json.Marshal(struct {
			Status  int    `json:"status"`
			Error   string `json:"error"`
			Message string `json:"message"`
		}{http.StatusServiceUnavailable, "maintenance", msg})
		body = append(body, '\n')
	default:
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = []byte("503 Service Unavailable: " + msg + "\n")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsType reports whether the Accept header accept names media type
// t explicitly (with a quality above 0); wildcards do not count, so that
// "*/*" gets the short text.
func acceptsType(accept, t string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(mt), t) {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.TrimSpace(k) == "q" {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}
