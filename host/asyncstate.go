package host

import "fmt"

// respPhase is where an async exchange's response, or its WebSocket handshake,
// stands. It moves only along the edges of phaseEdges: the guest's host calls
// ask can first and answer ERR_STATE when the move is not there, and the
// request goroutine's own moves use must, which panics on a move the table
// lacks (a host bug, never a guest's doing).
//
//	phaseOpen ──resp_start──▶ phaseHead ◀──resp_start (replace)
//	    │  ╲                    │    ╲
//	    │   resp_start refused  │     refused ──▶ phaseRefused ──resp_start──▶ phaseHead
//	 resp_write ──────────────▶ phaseBody ──resp_write END──▶ phaseEnded
//	    │                         └──Content-Length broken──▶ phaseFailed
//	 ws_accept (from Open, Head, Refused) ──▶ phaseAccepting ──handshake──▶ phaseUpgraded
//	 ws_close before accept (same) ─────────▶ phaseDenied ──403 sent──▶ phaseEnded
type respPhase uint8

const (
	phaseOpen      respPhase = iota // nothing staged: resp_write sends 200
	phaseHead                       // resp_start staged a head; another replaces it
	phaseRefused                    // the last resp_start was refused: there is no head
	phaseBody                       // resp_write: the head is final, the body streams
	phaseEnded                      // the last body byte is written (END, or the host's 403)
	phaseFailed                     // the body broke its Content-Length: 500, or cut
	phaseAccepting                  // ws_accept: the request goroutine does the handshake
	phaseUpgraded                   // the handshake is done: the socket is the WebSocket's
	phaseDenied                     // ws_close before ws_accept: the client gets 403
	numPhases
)

var phaseNames = [numPhases]string{"open", "head", "refused", "body", "ended", "failed", "accepting", "upgraded", "denied"}

func (p respPhase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

func edges(to ...respPhase) uint16 {
	var m uint16
	for _, p := range to {
		m |= 1 << p
	}
	return m
}

// phaseEdges[from] has bit to set for every legal move from → to. A phase
// without edges is final.
var phaseEdges = [numPhases]uint16{
	phaseOpen:      edges(phaseHead, phaseRefused, phaseBody, phaseEnded, phaseFailed, phaseAccepting, phaseDenied),
	phaseHead:      edges(phaseHead, phaseRefused, phaseBody, phaseEnded, phaseFailed, phaseAccepting, phaseDenied),
	phaseRefused:   edges(phaseHead, phaseRefused, phaseAccepting, phaseDenied),
	phaseBody:      edges(phaseBody, phaseEnded, phaseFailed),
	phaseEnded:     0,
	phaseFailed:    0,
	phaseAccepting: edges(phaseUpgraded),
	phaseUpgraded:  0,
	phaseDenied:    edges(phaseEnded),
}

// can reports whether p may move to next.
func (p respPhase) can(next respPhase) bool {
	return p < numPhases && next < numPhases && phaseEdges[p]&(1<<next) != 0
}

// must moves *p to next; the move must be in the table.
func (p *respPhase) must(next respPhase) {
	if !p.can(next) {
		panic(fmt.Sprintf("host: async exchange moved from %s to %s", *p, next))
	}
	*p = next
}

// accepted reports whether the guest accepted the WebSocket (handshake done
// or under way): ws_send and ws_close act on the connection.
func (p respPhase) accepted() bool { return p == phaseAccepting || p == phaseUpgraded }

// bodyPhase is where the read-ahead of an async request's body stands.
//
//	bodyIdle ──guest wants bytes──▶ bodyReading ──high water, or detached──▶ bodyIdle
//	                                     ├──end of body──▶ bodyEOF
//	                                     └──error, over the limit──▶ bodyFailed
type bodyPhase uint8

const (
	bodyIdle    bodyPhase = iota // no reader runs; more of the body may come
	bodyReading                  // the reader goroutine runs
	bodyEOF                      // the whole body is read (it may still be buffered)
	bodyFailed                   // the body cannot be read on: inStatus says why
)
