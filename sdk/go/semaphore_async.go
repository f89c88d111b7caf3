//go:build wasip1 && wasmsrv_async

package wasmsrv

// Semaphore bounds how many goroutines of an instance hold a resource at once,
// such as the connections of a database pool. In the async shape a goroutine
// must not wait on its own channels for something another request does later
// (docs/async.md): a pool that makes a request wait for a connection another
// request holds deadlocks the instance. Acquire waits the SDK's way instead: a
// connection's goroutine parks and the instance serves its other connections
// until a Release hands it the slot. Put a Semaphore as wide as the pool in front
// of it and the pool never waits.
//
// Slots are handed out in the order they were asked for. A Semaphore belongs to
// one instance (package state of the guest is per instance).
type Semaphore struct {
	n, held int
	q       []semWait
}

type semWait struct {
	w  *waiter       // an SDK goroutine parks here
	ch chan struct{} // any other goroutine blocks in the Go runtime on this
}

// NewSemaphore returns a semaphore of n slots (n ≥ 1).
func NewSemaphore(n int) *Semaphore {
	if n < 1 {
		panic("wasmsrv: NewSemaphore needs n ≥ 1")
	}
	return &Semaphore{n: n}
}

// Acquire takes a slot, waiting for one if all are held.
func (s *Semaphore) Acquire() {
	if s.held < s.n && len(s.q) == 0 {
		s.held++
		return
	}
	if sched.inEvent && sdkGoroutine() {
		w := new(waiter)
		s.q = append(s.q, semWait{w: w})
		w.wait()
		return
	}
	ch := make(chan struct{})
	s.q = append(s.q, semWait{ch: ch})
	<-ch
}

// Release gives a slot back, to the longest waiter if there is one.
func (s *Semaphore) Release() {
	if len(s.q) == 0 {
		if s.held == 0 {
			panic("wasmsrv: Semaphore.Release without Acquire")
		}
		s.held--
		return
	}
	sw := s.q[0]
	s.q[0] = semWait{}
	s.q = s.q[1:]
	if sw.w != nil {
		sw.w.wake()
	} else {
		close(sw.ch)
	}
}
