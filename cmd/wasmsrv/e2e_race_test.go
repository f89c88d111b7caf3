//go:build race

package main

// Under `go test -race` the server binary is built with -race too, so the e2e tests
// exercise the whole server under the race detector, not just the test process.
func init() { raceBuild = true }
