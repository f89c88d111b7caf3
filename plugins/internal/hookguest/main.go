// Command hookguest fetches the config variable "upstream" in its start hook, for
// the plugin tests: in an async guest no event can arrive during a hook, so fetch.Do
// looks for the response on a timer there, and every request answers with it.
package main

import (
	"strconv"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/fetch"
)

var warm string

func init() {
	wasmsrv.OnStart(func() error {
		u, err := config.Get("upstream")
		if err != nil {
			return err
		}
		resp, err := fetch.Get(u)
		if err != nil {
			return err
		}
		warm = strconv.Itoa(resp.Status) + " " + string(resp.Body)
		return nil
	})
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		w.WriteString(warm)
	})
}

func main() {}
