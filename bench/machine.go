package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine is the context a result is only valid in.
type Machine struct {
	When    time.Time
	CPU     string
	Cores   int
	Kernel  string
	Go      string
	Commit  string
	WrkInfo string
	// Load is /proc/loadavg when the run started: a busy machine explains odd numbers.
	Load string
}

func (m Machine) String() string {
	return fmt.Sprintf("- started: %s\n- machine: %d × %s, Linux %s, load average at start %s\n- %s, wasmsrv commit %s\n- %s\n",
		m.When.UTC().Format(time.RFC3339), m.Cores, m.CPU, m.Kernel, m.Load, m.Go, m.Commit, m.WrkInfo)
}

// probeMachine gathers Machine; anything it cannot read shows as "unknown".
func probeMachine(ctx context.Context, root string) Machine {
	return Machine{
		When:    time.Now(),
		CPU:     cpuModel(),
		Cores:   runtime.NumCPU(),
		Kernel:  firstLine(ctx, "", "uname", "-r"),
		Go:      runtime.Version(),
		Commit:  firstLine(ctx, root, "git", "describe", "--always", "--dirty"),
		WrkInfo: firstLine(ctx, "", "wrk", "-v"),
		Load:    loadAverage(),
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// firstLine runs a command and returns the first line of its output. wrk -v exits
// non-zero after printing its version, so the output counts even on error.
func firstLine(ctx context.Context, dir, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
