// Package isolation keeps piku's apps apart from each other and from the
// daemon: it tells an app's processes from the operator's (so that the
// control socket and the piku binary refuse them), and it sets the
// out-of-memory scores that make the kernel's OOM killer pick an app
// rather than the daemon that proxies every app.
package isolation
