// Command chat is a WebSocket chat room in the async shape: every message a client
// sends is published on the room's topic through the pubsub plugin, and every
// connection relays the topic to its client — so clients on different instances of
// the async pool (or, with Redis, on different nodes) talk to each other.
//
//	wasmsrv run --grant pubsub ./samples/chat
//	then open http://127.0.0.1:8080/ in two browser windows
//
// It needs the async shape: a connection waits for its client and for the room at
// the same time, which a sync instance (one blocking call at a time) cannot do; the
// directive below makes `wasmsrv run` and `wasmsrv serve` build it that way.
//
//wasmsrv:mode async
package main

import (
	"errors"
	"net/url"
	"sync/atomic"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/log"
	"github.com/wasmsrv/wasmsrv/sdk/go/pubsub"
)

// maxMessage keeps one client from flooding the room with huge frames.
const maxMessage = 4 << 10

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if !r.IsWebSocket() {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteString(page)
			return
		}
		q, _ := url.ParseQuery(r.RawQuery)
		room := q.Get("room")
		if room == "" {
			room = "lobby"
		}
		topic := "room:" + room
		sub, err := pubsub.Subscribe(topic)
		if err != nil {
			log.Error("subscribe failed", "room", room, "err", err)
			return // not accepted: the client gets 403
		}
		ws, err := wasmsrv.Accept(w, r, nil)
		if err != nil {
			sub.Close()
			return
		}
		var done atomic.Bool
		// The relay owns the subscription: it closes it when it stops, so no
		// Receive can run on a closed subscription.
		wasmsrv.Go(func() {
			defer sub.Close()
			for !done.Load() {
				msg, err := sub.Receive(time.Second)
				if errors.Is(err, pubsub.ErrTimeout) {
					continue
				}
				if err != nil || ws.WriteMessage(wasmsrv.TextMessage, msg) != nil {
					return
				}
			}
		})
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if kind != wasmsrv.TextMessage || len(msg) == 0 || len(msg) > maxMessage {
				continue
			}
			if err := pubsub.Publish(topic, msg); err != nil {
				log.Warn("publish failed", "room", room, "err", err)
			}
		}
		done.Store(true)
	})
}

const page = `<!doctype html>
<meta charset="utf-8">
<title>wasmsrv chat</title>
<style>
body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
#log { list-style: none; padding: 0; min-height: 10em; border: 1px solid #ccc; padding: .5em; }
#log li { margin: .2em 0; }
form { display: flex; gap: .5em; }
#text { flex: 1; }
</style>
<h1>wasmsrv chat</h1>
<p>Status: <span id="status">connecting</span></p>
<ul id="log"></ul>
<form id="form">
  <input id="name" size="8" placeholder="name">
  <input id="text" placeholder="message" autocomplete="off">
  <button>send</button>
</form>
<script>
const params = new URLSearchParams(location.search);
const room = params.get("room") || "lobby";
const name = document.getElementById("name");
name.value = params.get("name") || "guest" + Math.floor(Math.random() * 1000);
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws?room=" + encodeURIComponent(room));
const status = document.getElementById("status");
ws.onopen = () => { status.textContent = "connected"; };
ws.onclose = e => { status.textContent = "closed " + e.code; };
ws.onmessage = e => {
  const li = document.createElement("li");
  li.textContent = e.data;
  document.getElementById("log").appendChild(li);
};
document.getElementById("form").onsubmit = ev => {
  ev.preventDefault();
  const text = document.getElementById("text");
  if (text.value && ws.readyState === WebSocket.OPEN) {
    ws.send(name.value + ": " + text.value);
    text.value = "";
  }
};
</script>
`

func main() {}
