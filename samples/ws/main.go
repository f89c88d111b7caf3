// Command ws is a WebSocket echo server in the async shape: one instance carries
// thousands of connections, each handled by code that looks blocking.
//
//	wasmsrv run ./samples/ws
//	then open http://127.0.0.1:8080/ or use any WebSocket client on ws://127.0.0.1:8080/echo
//
// The client may offer the "echo" subprotocol; the text message "close" makes the
// server close with code 4000 and reason "bye".
//
//wasmsrv:mode async
package main

import (
	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if !r.IsWebSocket() {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteString(page)
			return
		}
		if r.Path != "/echo" {
			return // not accepted and nothing written: the client gets 403
		}
		opts := &wasmsrv.AcceptOptions{}
		for _, p := range r.Subprotocols() {
			if p == "echo" {
				opts.Subprotocol = p
			}
		}
		ws, err := wasmsrv.Accept(w, r, opts)
		if err != nil {
			return
		}
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return // closed by the client (the host finishes the handshake)
			}
			if kind == wasmsrv.TextMessage && string(msg) == "close" {
				ws.Close(4000, "bye")
				return
			}
			if ws.WriteMessage(kind, msg) != nil {
				return
			}
		}
	})
}

const page = `<!doctype html><title>wasmsrv ws echo</title>
<input id=msg value="hello"><button onclick="ws.send(msg.value)">send</button><pre id=log></pre>
<script>
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/echo", "echo");
ws.onmessage = e => { log.textContent += e.data + "\n"; };
ws.onclose = e => { log.textContent += "closed " + e.code + " " + e.reason + "\n"; };
</script>
`

func main() {}
