// Command mountguest is a sync SDK guest that does one filesystem operation per
// request on its mounts, as a Go program would: /read?p=PATH answers the file's
// content, /symlink?target=T&link=L makes a link, /rename?from=F&to=T renames,
// /list?p=DIR lists names. Errors are answered as "err: <message>" with status 200,
// so tests see exactly what the guest saw.
package main

import (
	"net/url"
	"os"
	"strings"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		var (
			out string
			err error
		)
		switch r.Path {
		case "/read":
			var b []byte
			b, err = os.ReadFile(q.Get("p"))
			out = string(b)
		case "/write":
			err = os.WriteFile(q.Get("p"), []byte(q.Get("data")), 0o644)
		case "/symlink":
			err = os.Symlink(q.Get("target"), q.Get("link"))
		case "/rename":
			err = os.Rename(q.Get("from"), q.Get("to"))
		case "/list":
			var es []os.DirEntry
			es, err = os.ReadDir(q.Get("p"))
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			out = strings.Join(names, ",")
		default:
			w.WriteHeader(404)
			return
		}
		if err != nil {
			out = "err: " + err.Error()
		}
		w.WriteString(out)
	})
}

func main() {}
