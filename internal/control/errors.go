package control

import "errors"

// Error codes an Event carries beside the text of its error, so that the
// client can rebuild errors a caller tells apart with errors.Is.
const (
	// CodeUnknownApp: the app does not exist (ErrUnknownApp).
	CodeUnknownApp = "unknown_app"
	// CodeKept: the new processes of kinds that had nothing running did
	// not come up, and stay supervised, retried with backoff (ErrKept).
	CodeKept = "kept"
)

// ErrKept is matched by errors whose code is CodeKept: the daemon wraps
// the supervisor's KeptError with it (see Coded), and the client rebuilds
// it from the code.
var ErrKept = errors.New("the new processes did not come up and are retried")

// sentinels are the errors each code stands for.
var sentinels = map[string]error{
	CodeUnknownApp: ErrUnknownApp,
	CodeKept:       ErrKept,
}

// Error is an error with a code: made by the daemon with Coded, or
// rebuilt by the client from an Event. Its text is Err's; errors.Is
// matches the sentinel of its code (ErrUnknownApp, ErrKept) as well as
// what Err matches.
type Error struct {
	Code string
	Err  error
}

// Coded returns err with code; nil when err is nil.
func Coded(code string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// errorCode is the code of err to send in an Event: the code of an *Error
// in its chain, or that of a sentinel it wraps; "" for none.
func errorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for code, s := range sentinels {
		if errors.Is(err, s) {
			return code
		}
	}
	return ""
}

// eventError rebuilds the error of a final Event.
func eventError(ev Event) error {
	if ev.Error == "" {
		return nil
	}
	if ev.Code == "" {
		return errors.New(ev.Error)
	}
	return &Error{Code: ev.Code, Err: errors.New(ev.Error)}
}
