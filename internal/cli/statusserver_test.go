package cli

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

// statusServer is an app: `web: status-server CODE` answers every request
// with the status CODE. It listens on $PORT before anything else, so a
// readiness check finds it answering as soon as its process runs (a Python
// server spends most of a short boot timeout starting on a busy machine).
func statusServer() int {
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: status-server CODE")
		return 2
	}
	code, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
	}))
	fmt.Fprintln(os.Stderr, err)
	return 1
}
