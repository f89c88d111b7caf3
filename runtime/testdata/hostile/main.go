// Command hostile is a guest that misbehaves on purpose, one way per path, so tests
// can check that each failure costs only its own request or instance.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
	"unsafe"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// Raw imports, to call host functions with arguments the SDK would never pass.
//
//go:wasmimport wasmsrv req_head
func rawReqHead(ctx uint32, buf uint32, limit uint32) int32

//go:wasmimport wasmsrv body_read
func rawBodyRead(ctx uint32, buf uint32, limit uint32) int64

//go:wasmimport wasmsrv resp_start
func rawRespStart(ctx uint32, status int32, hdr uint32, hdrLen uint32) int32

//go:wasmimport wasmsrv resp_write
func rawRespWrite(ctx uint32, p uint32, n uint32, flags int32) int32

//go:wasmimport wasmsrv disconnected
func rawDisconnected(ctx uint32) int32

var (
	// instance tells instances apart. It is drawn at the first request, not at
	// init: instances started from a snapshot share what init computed
	// (docs/rationale.md, "Instances start from a snapshot").
	instance uint32
	served   int
	hoard    [][]byte
	sink     int
)

const bad = 0xFFFF_FFF0 // far outside any guest memory

func init() {
	wasmsrv.OnStart(func() error {
		if os.Getenv("HOSTILE_FAIL_START") != "" {
			return fmt.Errorf("refusing to start: HOSTILE_FAIL_START is set")
		}
		return nil
	})
	wasmsrv.HandleFunc(handle)
}

func handle(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
	served++
	switch r.Path {
	case "/ok":
		w.WriteString("ok\n")
	case "/whoami":
		if instance == 0 {
			instance = rand.Uint32() | 1
		}
		w.WriteString(strconv.FormatUint(uint64(instance), 10) + " " + strconv.Itoa(served) + "\n")
	case "/loop":
		for {
			sink++
		}
	case "/spin":
		for {
			sink += work(sink)
		}
	case "/bomb":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "/panic":
		panic("handler panic on purpose")
	case "/gopanic":
		done := make(chan struct{})
		go func() { panic("goroutine panic on purpose") }()
		<-done
	case "/deadlock":
		ch := make(chan int)
		<-ch
	case "/exit":
		os.Exit(3)
	case "/sleep":
		time.Sleep(time.Hour)
	case "/stream-then-loop":
		w.WriteString("partial")
		w.Flush()
		for {
			sink++
		}
	case "/stream-then-panic":
		w.WriteString("partial")
		w.Flush()
		panic("panic after the head was sent")
	case "/stderr":
		fmt.Fprintln(os.Stderr, "hostile: a line on stderr")
		w.WriteString("ok\n")
	case "/badptr":
		badPointer(r.ID, r.RawQuery)
		w.WriteString("host accepted a bad pointer\n")
	case "/badhandle":
		rawReqHead(12345, 0, 0)
		w.WriteString("host accepted a bad handle\n")
	case "/status":
		code, _ := strconv.Atoi(r.RawQuery)
		w.WriteHeader(code)
	default:
		w.WriteHeader(404)
	}
}

//go:noinline
func work(n int) int { return n%7 + 1 }

// badPointer calls one host function with a region outside guest memory, on the
// current request's handle so that only the pointer is wrong.
func badPointer(_ string, fn string) {
	ctx := currentHandle()
	switch fn {
	case "req_head":
		rawReqHead(ctx, bad, 64)
	case "body_read":
		rawBodyRead(ctx, bad, 64)
	case "resp_start":
		rawRespStart(ctx, 200, bad, 64)
	case "resp_write":
		rawRespWrite(ctx, bad, 64, 0)
	case "resp_write_len":
		var b [8]byte
		rawRespWrite(ctx, uint32(uintptr(unsafe.Pointer(&b[0]))), 0x7FFF_FFFF, 0)
	case "disconnected":
		rawDisconnected(ctx + 1000) // bad handle: the only argument it takes
	}
}

// currentHandle is the live request's handle: the host numbers requests from 1 on
// each instance, and served counts them the same way.
func currentHandle() uint32 { return uint32(served) }

func main() {}
