// Command spin is a test guest for package interrupt: its export spin never
// returns, so only an interrupt can stop it. Built by the tests with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

// counter is read by count so the compiler cannot drop the loops.
var counter int32

// spin loops forever.
//
//go:wasmexport spin
func spin() {
	for {
		counter++
	}
}

// count runs a bounded loop, to show instrumented code still works.
//
//go:wasmexport count
func count(n int32) int32 {
	for i := int32(0); i < n; i++ {
		counter += i
	}
	return counter
}

// fib recurses without a loop of its own (the call-heavy benchmark's Go guest).
//
//go:wasmexport fib
func fib(n int32) int32 {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func main() {}
