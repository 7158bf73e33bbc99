package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
)

// NotRunningError is returned by Client when nothing answers on the
// control socket.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return "the piku daemon is not running (nothing answers on " + e.Socket +
		"): start it with `piku service start`, or `piku daemon` in the foreground"
}

// Unwrap returns the dial error.
func (e *NotRunningError) Unwrap() error { return e.Err }

// IsNotRunning reports whether err says the daemon is not running.
func IsNotRunning(err error) bool {
	var nr *NotRunningError
	return errors.As(err, &nr)
}

// Client is a typed client of the control API.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:      2,
		DisableKeepAlives: false,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Ping returns the daemon's Info.
func (c *Client) Ping(ctx context.Context) (Info, error) {
	var info Info
	err := c.getJSON(ctx, "/v1/ping", &info)
	return info, err
}

// Apps returns every app's status.
func (c *Client) Apps(ctx context.Context) ([]AppStatus, error) {
	var apps []AppStatus
	err := c.getJSON(ctx, "/v1/apps", &apps)
	return apps, err
}

// Status returns one app's status.
func (c *Client) Status(ctx context.Context, app string) (AppStatus, error) {
	var st AppStatus
	err := c.getJSON(ctx, "/v1/apps/"+url.PathEscape(app), &st)
	return st, err
}

// Deploy asks the daemon to roll out app from its files, copying progress
// to out, and returns the rollout's error. Transient progress lines go to
// out only when it is a ProgressWriter.
func (c *Client) Deploy(ctx context.Context, app string, req DeployRequest, out io.Writer) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.stream(ctx, "/v1/apps/"+url.PathEscape(app)+"/deploy", body, out)
}

// Stop asks the daemon to stop app, copying progress to out.
func (c *Client) Stop(ctx context.Context, app string, out io.Writer) error {
	return c.stream(ctx, "/v1/apps/"+url.PathEscape(app)+"/stop", nil, out)
}

// Restart asks the daemon to replace itself in place with the binary now
// at its path; the error says why it will not (the new binary or the
// settings failed their check). On success the daemon is restarting:
// Ping answers again, with a later Started, once the new image serves.
func (c *Client) Restart(ctx context.Context) error {
	resp, err := c.call(ctx, http.MethodPost, "/v1/restart")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ErrRestartUnsupported
	}
	return checkResponse(resp)
}

// ErrRestartUnsupported is Restart's error when the daemon predates
// restarts in place (it has no such endpoint).
var ErrRestartUnsupported = errors.New("the running piku daemon cannot restart in place (it predates it)")

// Forget asks the daemon to stop app and drop it.
func (c *Client) Forget(ctx context.Context, app string) error {
	resp, err := c.call(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(app))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return checkResponse(resp)
}

// call sends a request without a body to the daemon; the caller closes
// the response's body.
func (c *Client) call(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://piku"+path, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

// Pause asks the daemon to hold app's requests until resume is called;
// should the client die first, its connection's end resumes them.
func (c *Client) Pause(ctx context.Context, app string) (resume func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.call(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/pause")
	if err != nil {
		cancel()
		return nil, err
	}
	resume = func() {
		cancel()
		resp.Body.Close()
	}
	if err := checkResponse(resp); err != nil {
		resume()
		return nil, err
	}
	// The first event says the pause is on.
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	var ev Event
	if err == nil {
		err = json.Unmarshal(line, &ev)
	}
	if err != nil {
		resume()
		return nil, fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if ev.Done {
		resume()
		return nil, eventError(ev)
	}
	return resume, nil
}

// Metrics returns the daemon's metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.call(ctx, http.MethodGet, "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the daemon's metrics: %w", err)
	}
	return b, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.call(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	return nil
}

func (c *Client) stream(ctx context.Context, path string, body []byte, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://piku"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkResponse(resp); err != nil {
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("reading the daemon's answer: %w", err)
		}
		if ev.Done {
			return eventError(ev)
		}
		switch {
		case out == nil:
		case ev.Progress:
			WriteProgress(out, ev.Msg)
		default:
			fmt.Fprintln(out, ev.Msg)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the piku daemon went away during the operation: %w", err)
	}
	return errors.New("the piku daemon went away during the operation (it may have been stopped or crashed; see logs/piku.log)")
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" ||
			errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &NotRunningError{Socket: c.socket, Err: err}
		}
		return nil, fmt.Errorf("talking to the piku daemon: %w", err)
	}
	return resp, nil
}

func checkResponse(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var ev Event
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if json.Unmarshal(b, &ev) == nil && ev.Error != "" {
		if resp.StatusCode == http.StatusNotFound && ev.Code == "" {
			ev.Code = CodeUnknownApp // a daemon from before codes
		}
		return eventError(ev)
	}
	return fmt.Errorf("the piku daemon answered %s", resp.Status)
}
