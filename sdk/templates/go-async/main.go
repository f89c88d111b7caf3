// Command app is a wasmsrv app in the async shape: one instance carries many
// requests and WebSockets at once, each handled by code that looks blocking. It
// answers HTTP requests with a greeting and echoes every message of a WebSocket on
// /ws.
//
//	wasmsrv run .
//	curl localhost:8080/
//	then any WebSocket client on ws://localhost:8080/ws
//
// The directive below declares the shape, so `wasmsrv run` and `wasmsrv serve`
// build the package for it without a flag.
//
//wasmsrv:mode async
package main

import (
	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if !r.IsWebSocket() {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteString("Hello from an async wasmsrv app! WebSocket echo on /ws.\n")
			return
		}
		if r.Path != "/ws" {
			return // not accepted and nothing written: the client gets 403
		}
		ws, err := wasmsrv.Accept(w, r, nil)
		if err != nil {
			return
		}
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return // the client closed: the host finishes the handshake
			}
			if ws.WriteMessage(kind, msg) != nil {
				return
			}
		}
	})
}

func main() {}
