// Command fetch calls an allow-listed upstream through the http plugin. The upstream
// comes from the config plugin's UPSTREAM variable; ?url= asks for any URL, which the
// host refuses unless its host is on the allow list.
//
//	wasmsrv run --grant http,config --var UPSTREAM=https://example.com \
//	    --http-allow example.com ./samples/fetch
//
// The answer is the upstream's status and body; a refused or failed call is 502
// (504 on timeout) with the reason.
package main

import (
	"errors"
	"net/url"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/fetch"
	"github.com/wasmsrv/wasmsrv/sdk/go/log"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		target, _ := config.Lookup("UPSTREAM")
		if q, err := url.ParseQuery(r.RawQuery); err == nil && q.Get("url") != "" {
			target = q.Get("url")
		}
		if target == "" {
			w.WriteHeader(500)
			w.WriteString("no UPSTREAM configured\n")
			return
		}
		resp, err := fetch.Get(target)
		if err != nil {
			log.Warn("upstream call failed", "url", target, "err", err)
			status := 502
			if errors.Is(err, fetch.ErrTimeout) {
				status = 504
			}
			w.WriteHeader(status)
			w.WriteString(err.Error() + "\n")
			return
		}
		if ct := resp.HeaderValue("content-type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("X-Upstream-Status", itoa(resp.Status))
		w.WriteHeader(resp.Status)
		w.Write(resp.Body)
	})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

func main() {}
