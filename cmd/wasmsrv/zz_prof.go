package main

import (
	"os"
	"runtime/pprof"
	"time"
)

func init() {
	p := os.Getenv("ZZ_CPUPROFILE")
	if p == "" {
		return
	}
	go func() {
		time.Sleep(3 * time.Second)
		f, _ := os.Create(p)
		pprof.StartCPUProfile(f)
		time.Sleep(8 * time.Second)
		pprof.StopCPUProfile()
		f.Close()
	}()
}
