package host

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// TestPhaseEdges spells out every legal move of an async exchange's response;
// every pair not listed must be refused, and final phases have no way out.
func TestPhaseEdges(t *testing.T) {
	legal := map[[2]respPhase]bool{}
	for _, from := range []respPhase{phaseOpen, phaseHead} {
		for _, to := range []respPhase{phaseHead, phaseRefused, phaseBody, phaseEnded, phaseFailed, phaseAccepting, phaseDenied} {
			legal[[2]respPhase{from, to}] = true
		}
	}
	for _, to := range []respPhase{phaseHead, phaseRefused, phaseAccepting, phaseDenied} {
		legal[[2]respPhase{phaseRefused, to}] = true
	}
	for _, to := range []respPhase{phaseBody, phaseEnded, phaseFailed} {
		legal[[2]respPhase{phaseBody, to}] = true
	}
	legal[[2]respPhase{phaseAccepting, phaseUpgraded}] = true
	legal[[2]respPhase{phaseDenied, phaseEnded}] = true
	for from := range numPhases + 1 {
		for to := range numPhases + 1 {
			if got, want := from.can(to), legal[[2]respPhase{from, to}]; got != want {
				t.Errorf("%s → %s: can = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, p := range []respPhase{phaseEnded, phaseFailed, phaseUpgraded} {
		if phaseEdges[p] != 0 {
			t.Errorf("%s is final but has edges %b", p, phaseEdges[p])
		}
	}
	if s := respPhase(200).String(); s != "phase(200)" {
		t.Errorf("String of an unknown phase: %q", s)
	}
}

func TestPhaseMustPanics(t *testing.T) {
	p := phaseEnded
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "ended to body") {
			t.Fatalf("recovered %v", r)
		}
		if p != phaseEnded {
			t.Fatalf("an illegal move changed the phase to %s", p)
		}
	}()
	p.must(phaseBody)
}

// testExchange returns an async exchange bound to a recorded request, with no
// pool behind it: the test plays the guest (host calls) and the request
// goroutine (serve).
func testExchange(t *testing.T, isWS bool, timeout time.Duration) (*asyncExchange, *httptest.ResponseRecorder) {
	t.Helper()
	g := NewAsyncGateway(nil, AsyncGatewayConfig{RequestTimeout: timeout}, slog.New(slog.DiscardHandler))
	t.Cleanup(g.Close)
	req := httptest.NewRequest("GET", "/x", nil)
	rec := httptest.NewRecorder()
	e := g.exs.Get().(*asyncExchange)
	e.begin(g, rec, req, "", isWS)
	return e, rec
}

// step is one host call a guest makes, with the status it must get.
type step struct {
	name string
	call func(e *asyncExchange) int32
	want int32
}

var (
	start200  = func(e *asyncExchange) int32 { return e.Start(200, nil) }
	start500  = func(e *asyncExchange) int32 { return e.Start(500, nil) }
	startBad  = func(e *asyncExchange) int32 { return e.Start(101, nil) }
	write     = func(e *asyncExchange) int32 { return e.Write([]byte("x"), abi.WriteNoFlush) }
	writeEnd  = func(e *asyncExchange) int32 { return e.Write([]byte("x"), abi.WriteEnd) }
	accept    = func(e *asyncExchange) int32 { return e.WSAccept(nil, nil) }
	closeWS   = func(e *asyncExchange) int32 { return e.WSClose(1000, nil) }
	sendWS    = func(e *asyncExchange) int32 { return e.WSSend(abi.MessageText, []byte("m")) }
	readBody  = func(e *asyncExchange) int32 { _, _, rc := e.ReadBody(make([]byte, 8)); return rc }
	expireNow = func(e *asyncExchange) int32 { e.expire(); return abi.OK }
)

// TestAsyncExchangeHostileOrders drives the host calls in the orders a
// hostile guest can choose, including around the request deadline, and checks
// each answer and the phase they leave.
func TestAsyncExchangeHostileOrders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ws    bool
		steps []step
		final respPhase
	}{
		{"respond twice", false, []step{
			{"start", start200, abi.OK}, {"write END", writeEnd, abi.OK},
			{"start again", start500, abi.ErrState}, {"write again", write, abi.ErrState}, {"END again", writeEnd, abi.ErrState},
		}, phaseEnded},
		{"replace the held head", false, []step{
			{"start", start200, abi.OK}, {"start 500", start500, abi.OK}, {"write", write, abi.OK},
			{"start after body", start200, abi.ErrState},
		}, phaseBody},
		{"refused head", false, []step{
			{"start 101", startBad, abi.ErrBadArgument}, {"write", write, abi.ErrState},
			{"start", start200, abi.OK}, {"write", write, abi.OK},
		}, phaseBody},
		{"body after the response failed", false, []step{
			{"start with length 1", func(e *asyncExchange) int32 { return e.Start(200, hdrBlock("content-length", "1")) }, abi.OK},
			{"write 2 bytes", func(e *asyncExchange) int32 { return e.Write([]byte("xy"), 0) }, abi.ErrBadArgument},
			{"write", write, abi.ErrClosed}, {"start", start200, abi.ErrState},
		}, phaseFailed},
		{"accept on a plain request", false, []step{
			{"accept", accept, abi.ErrState}, {"close", closeWS, abi.ErrState}, {"send", sendWS, abi.ErrState},
		}, phaseOpen},
		{"upgrade after the response started", true, []step{
			{"write", write, abi.OK}, {"accept", accept, abi.ErrState}, {"send", sendWS, abi.ErrState},
			{"close (the response denied it)", closeWS, abi.OK},
		}, phaseBody},
		{"accept after a held head", true, []step{
			{"start", start200, abi.OK}, {"accept", accept, abi.OK},
		}, phaseAccepting},
		{"respond after accept", true, []step{
			{"accept", accept, abi.OK}, {"accept again", accept, abi.ErrState},
			{"start", start200, abi.ErrState}, {"write", write, abi.ErrState}, {"END", writeEnd, abi.ErrState},
		}, phaseAccepting},
		{"respond after deny", true, []step{
			{"close before accept", closeWS, abi.OK}, {"close again", closeWS, abi.OK},
			{"start", start200, abi.ErrState}, {"write", write, abi.ErrState},
			{"accept", accept, abi.ErrState}, {"send", sendWS, abi.ErrState},
		}, phaseDenied},
		{"cancel before the response", false, []step{
			{"deadline", expireNow, abi.OK},
			{"start", start200, abi.ErrTimeout}, {"write", write, abi.ErrTimeout}, {"read body", readBody, abi.ErrClosed},
		}, phaseOpen},
		{"cancel during the response", false, []step{
			{"start", start200, abi.OK}, {"write", write, abi.OK}, {"deadline", expireNow, abi.OK},
			{"write", write, abi.ErrTimeout}, {"END", writeEnd, abi.ErrTimeout},
		}, phaseBody},
		{"cancel before accept", true, []step{
			{"deadline", expireNow, abi.OK}, {"accept", accept, abi.ErrState}, {"close", closeWS, abi.ErrState},
		}, phaseOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := testExchange(t, tc.ws, time.Minute)
			for i, s := range tc.steps {
				if got := s.call(e); got != s.want {
					t.Fatalf("step %d (%s) in phase %s: %d, want %d", i, s.name, e.phase, got, s.want)
				}
			}
			if e.phase != tc.final {
				t.Fatalf("ends in %s, want %s", e.phase, tc.final)
			}
		})
	}
}

func hdrBlock(kv ...string) []byte {
	var hs []abi.Header
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, abi.Header{Name: kv[i], Value: kv[i+1]})
	}
	return abi.AppendHeaderBlock(nil, hs)
}

// TestAsyncExchangeDenyThenWrite: a guest that denies the upgrade and then
// writes a response gets ERR_STATE, and the client gets the 403 whichever
// side runs first.
func TestAsyncExchangeDenyThenWrite(t *testing.T) {
	for i := range 50 {
		e, rec := testExchange(t, true, time.Minute)
		done := make(chan bool)
		go func() { done <- e.serve() }()
		if rc := e.WSClose(1000, nil); rc != abi.OK {
			t.Fatalf("deny: %d", rc)
		}
		if rc := e.Start(200, nil); rc != abi.ErrState {
			t.Fatalf("round %d: start after deny: %d", i, rc)
		}
		if rc := e.Write([]byte("mine"), abi.WriteEnd); rc != abi.ErrState {
			t.Fatalf("round %d: write after deny: %d", i, rc)
		}
		e.Finish(0, nil)
		if cut := <-done; cut {
			t.Fatal("cut")
		}
		e.release()
		if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "mine") {
			t.Fatalf("round %d: %d %q", i, rec.Code, rec.Body.String())
		}
	}
}

// TestAsyncExchangeCancelRace runs a guest's whole response against a request
// deadline of a few microseconds, many times: every round ends in the
// guest's complete response, a 504, or a cut (head already out), never a
// mix, and every host call answers OK or ERR_TIMEOUT.
func TestAsyncExchangeCancelRace(t *testing.T) {
	seen := map[string]int{}
	for i := range 300 {
		e, rec := testExchange(t, false, time.Duration(i%20)*time.Microsecond+time.Nanosecond)
		done := make(chan bool)
		go func() { done <- e.serve() }()
		rcs := []int32{e.Start(200, hdrBlock("content-length", "5")), e.Write([]byte("hel"), 0), e.Write([]byte("lo"), abi.WriteEnd)}
		e.Finish(0, nil)
		cut := <-done
		e.release()
		for j, rc := range rcs {
			if rc != abi.OK && rc != abi.ErrTimeout {
				t.Fatalf("round %d: call %d answered %d", i, j, rc)
			}
		}
		body, _ := io.ReadAll(rec.Result().Body)
		switch {
		case cut:
			seen["cut"]++
		case rec.Code == 200 && string(body) == "hello":
			seen["200"]++
		case rec.Code == http.StatusGatewayTimeout:
			seen["504"]++
		default:
			t.Fatalf("round %d: %d %q (calls %v)", i, rec.Code, body, rcs)
		}
	}
	t.Logf("outcomes: %v", seen)
}
