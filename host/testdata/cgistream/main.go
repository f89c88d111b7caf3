// Command cgistream is a CGI command that prints an event stream progressively:
// n events (query n, default 3) with gap milliseconds (default 500) of sleep between
// them, each printed with its own write; with spin=1 it computes (spins on the
// clock) through the gaps instead of sleeping. With gate=1, each event after
// the first also waits until the file /gate/<its number> exists (a test creates it
// once it received the event before): it sleeps (or spins) gap by gap and looks,
// so the event stream is paced by its reader. With fail=1 it panics after its
// header section instead, before any body byte.
//
// Built by the host tests (GOOS=wasip1 GOARCH=wasm go build).
package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"
)

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	fmt.Print("Content-Type: text/event-stream\nCache-Control: no-store\n\n")
	if q.Get("fail") != "" {
		panic("failing after the header section")
	}
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil {
		n = 3
	}
	gap := 500
	if ms, err := strconv.Atoi(q.Get("gap")); err == nil {
		gap = ms
	}
	gate := q.Get("gate") != ""
	for i := 1; i <= n; i++ {
		for i > 1 {
			d := time.Duration(gap) * time.Millisecond
			if q.Get("spin") == "" {
				time.Sleep(d)
			} else {
				for start := time.Now(); time.Since(start) < d; {
				}
			}
			if !gate {
				break
			}
			if _, err := os.Stat("/gate/" + strconv.Itoa(i)); err == nil {
				break
			}
		}
		if _, err := fmt.Printf("data: %d\n\n", i); err != nil {
			fmt.Fprintln(os.Stderr, "cgistream: client gone:", err)
			os.Exit(1)
		}
	}
}
