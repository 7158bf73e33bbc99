package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

// failBackend fails every operation with err.
type failBackend struct {
	memBackend
	err error
}

func (b *failBackend) Deploy(ctx context.Context, app string, req DeployRequest, out io.Writer) error {
	fmt.Fprintln(out, "-----> trying")
	return b.err
}

func (b *failBackend) Forget(ctx context.Context, app string) error { return b.err }

// TestTypedErrors: an error crosses the socket with its text and its
// code, streamed (Deploy) or not (Forget), and the client rebuilds an
// error that errors.Is tells apart as the daemon's did.
func TestTypedErrors(t *testing.T) {
	kept := errors.New(`rolling out app: web: never became ready`)
	for _, tc := range []struct {
		name       string
		err        error
		unknown    bool
		kept       bool
		wantCodeOf string
	}{
		{"unknown app", fmt.Errorf("app %q: %w", "app", ErrUnknownApp), true, false, CodeUnknownApp},
		{"kept", Coded(CodeKept, kept), false, true, CodeKept},
		{"kept, wrapped", fmt.Errorf("app %q: %w", "app", Coded(CodeKept, kept)), false, true, CodeKept},
		{"plain", errors.New(`app "app": Procfile line 3: missing ':'`), false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorCode(tc.err); got != tc.wantCodeOf {
				t.Errorf("code %q, want %q", got, tc.wantCodeOf)
			}
			c := startServer(t, &failBackend{err: tc.err})
			for op, err := range map[string]error{
				"Deploy": c.Deploy(context.Background(), "app", DeployRequest{}, io.Discard),
				"Forget": c.Forget(context.Background(), "app"),
			} {
				if err == nil || err.Error() != tc.err.Error() {
					t.Errorf("%s: err %v, want the text %q", op, err, tc.err)
					continue
				}
				if errors.Is(err, ErrUnknownApp) != tc.unknown {
					t.Errorf("%s: errors.Is(%v, ErrUnknownApp) = %v", op, err, !tc.unknown)
				}
				if errors.Is(err, ErrKept) != tc.kept {
					t.Errorf("%s: errors.Is(%v, ErrKept) = %v", op, err, !tc.kept)
				}
			}
		})
	}
}
