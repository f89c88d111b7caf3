package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TreeRSS sums VmRSS over pid and all its descendants, read from procRoot (normally
// /proc). It returns the sum in bytes and the number of processes counted. Shared
// pages (a prefork master's copy-on-write heap) count once per process, which is how
// ps and top report them too.
func TreeRSS(procRoot string, pid int) (int64, int, error) {
	// A process that exited while we walked, or a kernel thread without VmRSS,
	// is skipped.
	return sumTree(procRoot, pid, vmRSS)
}

// sumTree adds up read(procRoot, p) over pid and its descendants, skipping
// those it cannot read, and says how many it counted.
func sumTree(procRoot string, pid int, read func(procRoot string, pid int) (int64, error)) (int64, int, error) {
	children, err := childMap(procRoot)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	n := 0
	for _, p := range descendants(children, pid) {
		v, err := read(procRoot, p)
		if err != nil {
			continue
		}
		total += v
		n++
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("no process found for pid %d", pid)
	}
	return total, n, nil
}

// descendants returns pid followed by every process below it.
func descendants(children map[int][]int, pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// childMap maps each pid to its children's pids, from every /proc/<pid>/stat.
func childMap(procRoot string) (map[int][]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", procRoot, err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, ok := parsePPID(stat); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	return children, nil
}

// parsePPID reads field 4 of /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so parse after the last ')'.
func parsePPID(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// vmRSS reads VmRSS (kB) from /proc/<pid>/status, in bytes.
func vmRSS(procRoot string, pid int) (int64, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("status of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux the benchmark runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// TreeCPU sums the CPU time (user + system) used so far by pid and all its
// descendants, read from procRoot. Sampled before and after a load run, the
// difference is what the server spent on it: a steadier measure than rps on a
// machine the load generator shares.
func TreeCPU(procRoot string, pid int) (time.Duration, error) {
	ticks, _, err := sumTree(procRoot, pid, cpuTicks)
	return time.Duration(ticks) * time.Second / clockTicks, err
}

// cpuTicks reads utime + stime of one process.
func cpuTicks(procRoot string, pid int) (int64, error) {
	stat, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	t, ok := parseCPUTicks(stat)
	if !ok {
		return 0, fmt.Errorf("stat of %d: no utime/stime", pid)
	}
	return t, nil
}

// parseCPUTicks reads utime and stime (fields 14 and 15) of a stat line.
func parseCPUTicks(stat []byte) (int64, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	// After ')': field 3 (state) is fields[0], so field N is fields[N-3].
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	s, err2 := strconv.ParseInt(fields[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}
