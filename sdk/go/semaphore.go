//go:build !(wasip1 && wasmsrv_async)

package wasmsrv

// Semaphore bounds how many goroutines of an instance hold a resource at once,
// such as the connections of a database pool. In the sync shape an instance
// serves one request at a time, so it matters only for the app's own goroutines;
// the async shape's version parks the waiting connection the SDK's way, where a
// pool's own wait would deadlock the instance. Use it in front of a pool and the
// same code runs in both shapes.
type Semaphore struct{ ch chan struct{} }

// NewSemaphore returns a semaphore of n slots (n ≥ 1).
func NewSemaphore(n int) *Semaphore {
	if n < 1 {
		panic("wasmsrv: NewSemaphore needs n ≥ 1")
	}
	return &Semaphore{ch: make(chan struct{}, n)}
}

// Acquire takes a slot, waiting for one if all are held.
func (s *Semaphore) Acquire() { s.ch <- struct{}{} }

// Release gives a slot back.
func (s *Semaphore) Release() {
	select {
	case <-s.ch:
	default:
		panic("wasmsrv: Semaphore.Release without Acquire")
	}
}
