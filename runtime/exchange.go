package runtime

// Exchange is one request as the host's HTTP side presents it to a guest through the
// core host functions (SPEC §4). The host gateway implements it; byte slices passed in
// are views of guest memory, valid only during the call.
type Exchange interface {
	// Head returns the encoded request head (SPEC §3). It must return the same bytes
	// for the whole request.
	Head() []byte
	// ReadBody reads body bytes into p. It blocks until at least one byte or the end
	// of the body. status is an abi status code (< 0) or 0.
	ReadBody(p []byte) (n int, eof bool, status int32)
	// Start sets the status and the headers (an abi header block), held until the
	// first Write. It returns an abi status code.
	Start(status int32, headerBlock []byte) int32
	// Write appends body bytes (abi.WriteEnd, abi.WriteNoFlush flags).
	Write(p []byte, flags int32) int32
	// Disconnected reports whether the client is gone.
	Disconnected() bool
	// Abort unblocks pending reads and writes; the deadline timer calls it from
	// another goroutine.
	Abort()
}
