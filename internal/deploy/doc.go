// Package deploy turns a git push into a running release: it creates the
// bare repository and its hooks, parses what the hook is told, checks the
// pushed revision out with go-git into a new release directory, detects the
// app's runtime and builds it, runs the preflight and release entries,
// switches apps/APP to the new release and asks the daemon (through package
// control) to roll it out. A failure at any step leaves the live release in
// place and fails the hook, so git rejects the push.
//
// It also keeps the last releases and puts an earlier one back live
// (Rollback) without rebuilding.
package deploy
