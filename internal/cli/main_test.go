package cli

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestExitCodes: what Main prints and returns for the errors commands give.
func TestExitCodes(t *testing.T) {
	failed := exec.Command("/bin/sh", "-c", "exit 3").Run()
	var xe *exec.ExitError
	if !errors.As(failed, &xe) {
		t.Fatalf("sh exit 3: %v", failed)
	}
	tests := []struct {
		name    string
		err     error
		code    int
		printed string
	}{
		{"plain", errors.New("boom"), 1, "piku: boom\n"},
		{"exit error with message", &ExitError{Code: 4, Msg: "nope"}, 4, "piku: nope\n"},
		{"silent exit error", &ExitError{Code: 5}, 5, ""},
		{"a child's exit status, as is", xe, 3, ""},
		{"a wrapped child failure is explained", fmt.Errorf("build failed: %w", xe), 1, "piku: build failed: exit status 3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if code := exitCode(tt.err, &stderr); code != tt.code || stderr.String() != tt.printed {
				t.Errorf("exitCode = %d, printed %q; want %d, %q", code, stderr.String(), tt.code, tt.printed)
			}
		})
	}
}
