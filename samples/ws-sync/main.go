// Command ws-sync is a WebSocket app in the sync shape: each connection holds one
// instance for its whole life (gunicorn's sync-worker limitation: with the default
// 2×CPU+1 instances, that many clients at most). It counts the messages of its
// connection, which it can keep in a plain variable for the same reason. For many
// connections use the async shape (samples/ws, declared by its //wasmsrv:mode async).
//
//	wasmsrv run ./samples/ws-sync
//	then send text messages to ws://127.0.0.1:8080/
//
//wasmsrv:mode sync
package main

import (
	"strconv"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if !r.IsWebSocket() {
			w.WriteHeader(426) // Upgrade Required
			w.WriteString("connect with a WebSocket client\n")
			return
		}
		ws, err := wasmsrv.Accept(w, r, nil)
		if err != nil {
			return
		}
		n := 0
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			n++
			if kind == wasmsrv.TextMessage && string(msg) == "bye" {
				ws.Close(wasmsrv.CloseNormal, "bye after "+strconv.Itoa(n))
				return
			}
			if ws.WriteText("#"+strconv.Itoa(n)+" "+string(msg)) != nil {
				return
			}
		}
	})
}

func main() {}
