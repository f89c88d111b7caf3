package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// TestStartTreeWithUpstream starts the real native server behind another native
// server (standing in for a proxy), checks both answer, measures RSS, and stops them.
func TestStartTreeWithUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs servers")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ws, err := NewWorkspace(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	r := &Runner{WS: ws, Log: log}

	backend := nativeServer()
	backend.Name = "backend"
	front := nativeServer()
	front.Upstreams = []Server{backend}
	launch := front.Launch
	var seen []string
	front.Launch = func(ctx context.Context, env LaunchEnv) (Command, error) {
		seen = env.Upstreams
		return launch(ctx, env)
	}

	p, err := r.launch(ctx, front)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != p.upstreams[0].addr {
		t.Fatalf("front saw upstreams %v, want [%s]", seen, p.upstreams[0].addr)
	}
	var started []*Process
	proc, err := r.startTree(ctx, p, &started)
	defer r.stopAll(started)
	if err != nil {
		t.Fatal(err)
	}
	if len(started) != 2 {
		t.Fatalf("started %d processes, want 2", len(started))
	}
	want := Expect{Status: 200, ContentType: helloType, Body: helloBody}
	for _, addr := range []string{p.addr, p.upstreams[0].addr} {
		if err := checkResponse(ctx, "http://"+addr+"/", want); err != nil {
			t.Error(err)
		}
	}
	if rss, n, err := TreeRSS("/proc", proc.Pid()); err != nil || rss <= 0 || n != 1 {
		t.Errorf("rss %d over %d procs, err %v", rss, n, err)
	}

	r.stopAll(started)
	for _, s := range started {
		if err := syscall.Kill(s.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still there after stop: %v", s.Pid(), err)
		}
	}
	started = nil
}

func TestCheckResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, helloBody)
	}))
	defer srv.Close()
	ctx := context.Background()
	err := checkResponse(ctx, srv.URL, Expect{Status: 200, ContentType: helloType, Body: helloBody})
	if err == nil || !strings.Contains(err.Error(), "Content-Type") {
		t.Errorf("want Content-Type mismatch, got %v", err)
	}
	if err := checkResponse(ctx, srv.URL, Expect{Status: 200, ContentType: "text/html", Body: helloBody}); err != nil {
		t.Error(err)
	}
}

func TestEnsureSkipsWhenInstallDisabled(t *testing.T) {
	in := &Installer{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	missing := Tool{Name: "nothing-here", Present: func(context.Context) bool { return false }}
	err := in.Ensure(context.Background(), []Tool{missing})
	if err == nil || err.Error() != "nothing-here not installed" {
		t.Errorf("got %v", err)
	}
}
