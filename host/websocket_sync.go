package host

import (
	"net/http"
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/host/internal/websocket"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// syncWSLifetime is the call deadline of a sync-mode WebSocket. In the sync shape
// the guest runs the whole connection inside one wasmsrv_handle call and holds its
// instance for that long (gunicorn's limitation; the async shape is the answer),
// so the pool's request timeout cannot apply. Idle connections still end through
// the ping timeout.
const syncWSLifetime = 24 * time.Hour

// wsHub returns the gateway's WebSocket hub, created on first use.
func (g *Gateway) wsHub() *websocket.Hub {
	g.wsOnce.Do(func() { g.ws = websocket.NewHub(g.cfg.WebSocket, g.log) })
	return g.ws
}

// Close closes the gateway's WebSockets (1001). Call it before closing the pool.
func (g *Gateway) Close() {
	g.wsOnce.Do(func() {}) // no hub yet: none will be made
	if g.ws != nil {
		g.ws.Close()
	}
}

// syncWS is a WebSocket upgrade request on a sync instance: the HTTP exchange (for
// a denial response) plus the socket, with host calls that block.
type syncWS struct {
	*syncExchange
	ws        *websocket.Conn
	sig       chan struct{}
	abortOnce sync.Once
	abortc    chan struct{}
	accepted  bool
	denied    bool
}

var (
	_ runtime.WebSocket     = (*syncWS)(nil)
	_ runtime.CallTimeouter = (*syncWS)(nil)
)

// serveWebSocket runs a WebSocket upgrade request on a sync instance.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !wsorigin.Check(w, r, g.cfg.WebSocket.Origins, g.log) {
		return // before an instance is taken
	}
	rootPath := route.RootPath(r.Context()) // the route strips it (route.Mount)
	ex := g.exs.Get().(*syncExchange)
	ex.reset(g, w, r, rootPath, g.ids.Add(1))
	sx := &syncWS{syncExchange: ex, sig: make(chan struct{}, 1), abortc: make(chan struct{})}
	sx.ws = g.wsHub().NewConn(sx.notify)
	g.wsArriving()
	code, err := g.pool.Serve(r.Context(), sx)
	if sx.accepted {
		g.wsWatch.open.Add(-1)
		if err != nil {
			g.log.Error("websocket guest failed", "err", err)
			sx.ws.CloseWith(abi.CloseInternalError, "internal error", true)
		} else {
			sx.ws.CloseWith(abi.CloseNormal, "", true)
		}
		return // hijacked: the exchange keeps the (dead) ResponseWriter, do not pool it
	}
	switch {
	case err == nil && !ex.started && ex.refused == nil && !ex.headSent && !ex.committed && (sx.denied || !finalCode(code)):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	default:
		if g.finish(ex, code, err) {
			panic(http.ErrAbortHandler)
		}
	}
	ex.reset(nil, nil, nil, "", 0)
	g.exs.Put(ex)
}

func (s *syncWS) notify(int32, int64, int64) {
	select {
	case s.sig <- struct{}{}:
	default:
	}
}

// block waits for the next notification; false when the deadline aborted the call.
func (s *syncWS) block() bool {
	select {
	case <-s.sig:
		return true
	case <-s.abortc:
		return false
	}
}

// Head implements runtime.Exchange: the head says "WebSocket upgrade".
func (s *syncWS) Head() []byte {
	h := s.syncExchange.Head()
	h[1] = abi.KindWebSocket
	return h
}

// CallTimeout implements runtime.CallTimeouter.
func (s *syncWS) CallTimeout(time.Duration) time.Duration { return syncWSLifetime }

// Abort implements runtime.Exchange: the instance died, unblock the guest's wait.
func (s *syncWS) Abort() {
	s.abortOnce.Do(func() { close(s.abortc) })
	if !s.accepted {
		s.syncExchange.Abort()
	}
}

// WSAccept implements runtime.WebSocket: the handshake happens right here.
func (s *syncWS) WSAccept(proto, hdrBlock []byte) int32 {
	if s.accepted || s.denied || s.started || s.headSent || s.committed {
		return abi.ErrState
	}
	h := http.Header{}
	if _, err := guestHeaders(h, hdrBlock, http.StatusSwitchingProtocols); err != nil {
		return abi.ErrBadArgument
	}
	if len(proto) > 0 && !validProto(proto) {
		return abi.ErrBadArgument
	}
	if err := s.ws.Upgrade(s.w, s.r, string(proto), h); err != nil {
		s.gw.log.Info("websocket handshake failed", "err", err)
		s.headSent, s.ended = true, true // gobwas/ws answered the client
		return abi.ErrClosed
	}
	s.accepted = true
	s.gw.wsWatch.open.Add(1)
	s.headSent, s.ended = true, true
	return abi.OK
}

// WSRecv implements runtime.WebSocket (blocking).
func (s *syncWS) WSRecv(p []byte) (int32, int, int32) {
	if !s.accepted {
		return 0, 0, abi.ErrState
	}
	return s.ws.Recv(p, s.block)
}

// WSSend implements runtime.WebSocket (blocks while the send buffer is full).
func (s *syncWS) WSSend(kind int32, p []byte) int32 {
	if !s.accepted {
		return abi.ErrState
	}
	return s.ws.Send(kind, p, s.block)
}

// WSClose implements runtime.WebSocket; before accept it denies the upgrade.
func (s *syncWS) WSClose(code int32, reason []byte) int32 {
	if !s.accepted {
		s.denied = true
		return abi.OK
	}
	return s.ws.GuestClose(code, reason)
}

// WSCloseInfo implements runtime.WebSocket.
func (s *syncWS) WSCloseInfo() (int32, []byte) { return s.ws.CloseInfo() }

// Start and Write refuse once the connection is a WebSocket.
func (s *syncWS) Start(status int32, block []byte) int32 {
	if s.accepted {
		return abi.ErrState
	}
	return s.syncExchange.Start(status, block)
}

func (s *syncWS) Write(p []byte, flags int32) int32 {
	if s.accepted {
		return abi.ErrState
	}
	return s.syncExchange.Write(p, flags)
}
