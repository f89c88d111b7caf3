package testkit

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the process's user plus system CPU time so far (GC included):
// per operation it is steadier than wall time on a busy machine.
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU reports the CPU time since cpu0 per b.N as "cpu-ns/op".
func ReportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((CPUTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
