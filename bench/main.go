// Command bench measures wasmsrv against its peers (native Go net/http, uvicorn,
// gunicorn, ...) with wrk, in one run, and prints ratios measured side by side.
//
//	go run ./bench                 # every scenario, default load
//	go run ./bench -d 3s hello     # one scenario, short run
//	go run ./bench -o bench.md     # also write the Markdown report
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
)

// options are the command-line settings. Zero load fields keep each scenario's own.
type options struct {
	load    Load
	out     string
	list    bool
	servers string
	install bool
	verbose bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, []string, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.load.Duration, "d", 0, "measured wrk duration per server (default: the scenario's, 10s for hello)")
	fs.DurationVar(&o.load.Warmup, "warmup", 0, "wrk warm-up before each measured run (default: the scenario's, 2s for hello)")
	fs.IntVar(&o.load.Conns, "c", 0, "wrk connections (default: the scenario's, 64 for hello)")
	fs.IntVar(&o.load.Threads, "t", 0, "wrk threads (default: the scenario's, 1 for hello)")
	fs.IntVar(&o.load.Runs, "runs", 0, "measured runs per server, taken in turns; the median by rps is reported (default 1)")
	fs.StringVar(&o.out, "o", "", "also write the report as Markdown to this file")
	fs.BoolVar(&o.list, "list", false, "list scenarios and their servers, then exit")
	fs.StringVar(&o.servers, "servers", "", "comma-separated server names to run (default: all)")
	fs.BoolVar(&o.install, "install", true, "install missing tools with apt-get")
	fs.BoolVar(&o.verbose, "v", false, "log wrk's full output")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./bench [flags] [scenario...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, nil, fmt.Errorf("flags: %w", err)
	}
	return o, fs.Args(), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, names, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	all, err := catalog(registry())
	if err != nil {
		return err
	}
	if o.list {
		return listScenarios(stdout, all)
	}
	scenarios, err := selectScenarios(all, names)
	if err != nil {
		return err
	}
	for _, sc := range scenarios {
		if err := validate(sc); err != nil {
			return err
		}
	}
	if err := checkServerNames(scenarios, nameSet(o.servers)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	sections, m, err := measureAll(ctx, log, o, scenarios)
	if err != nil {
		return err
	}
	return report(stdout, o.out, m, sections)
}

// measureAll prepares the workspace and tools, then runs every scenario.
func measureAll(ctx context.Context, log *slog.Logger, o options, scenarios []Scenario) ([]Section, Machine, error) {
	ws, err := NewWorkspace(ctx, log)
	if err != nil {
		return nil, Machine{}, err
	}
	defer ws.Close()
	inst := &Installer{Log: log, Enabled: o.install}
	if err := inst.Ensure(ctx, []Tool{commandTool("wrk", "wrk")}); err != nil {
		return nil, Machine{}, fmt.Errorf("wrk drives every scenario: %w", err)
	}
	m := probeMachine(ctx, ws.Root)
	script, err := ws.WriteFile("report.lua", wrkReport)
	if err != nil {
		return nil, Machine{}, err
	}
	r := &Runner{WS: ws, Inst: inst, Log: log, Script: script, Verbose: o.verbose, Only: nameSet(o.servers)}
	sections := make([]Section, 0, len(scenarios))
	for _, sc := range scenarios {
		load := mergeLoad(sc.Load, o.load)
		log.Info("scenario", "name", sc.Name, "threads", load.Threads, "conns", load.Conns, "duration", load.Duration)
		sections = append(sections, Section{Scenario: sc, Load: load, Results: r.Run(ctx, sc, load)})
		if ctx.Err() != nil {
			return nil, Machine{}, fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	return sections, m, nil
}

// report prints the Markdown report, writes it to path when set, and fails the run
// when any server failed (a skipped one does not fail it).
func report(stdout io.Writer, path string, m Machine, sections []Section) error {
	if err := writeMarkdown(stdout, m, sections); err != nil {
		return err
	}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("report file: %w", err)
		}
		if err := writeMarkdown(f, m, sections); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("report file: %w", err)
		}
	}
	var failed []string
	for _, s := range sections {
		for _, r := range s.Results {
			if r.Err != nil {
				failed = append(failed, s.Scenario.Name+"/"+r.Server.Name)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// mergeLoad overrides the scenario's load with every non-zero flag value.
func mergeLoad(base, flags Load) Load {
	if flags.Threads > 0 {
		base.Threads = flags.Threads
	}
	if flags.Conns > 0 {
		base.Conns = flags.Conns
	}
	if flags.Duration > 0 {
		base.Duration = flags.Duration
	}
	if flags.Warmup > 0 {
		base.Warmup = flags.Warmup
	}
	if flags.Runs > 0 {
		base.Runs = flags.Runs
	}
	return base
}

// checkServerNames rejects -servers names that no selected scenario has, so a typo
// does not silently produce an empty table.
func checkServerNames(scenarios []Scenario, only map[string]bool) error {
	known := map[string]bool{}
	for _, sc := range scenarios {
		for _, s := range sc.Servers {
			known[s.Name] = true
		}
	}
	for n := range only {
		if !known[n] {
			return fmt.Errorf("no selected scenario has a server %q (try -list)", n)
		}
	}
	return nil
}

func nameSet(csv string) map[string]bool {
	set := map[string]bool{}
	for _, n := range strings.Split(csv, ",") {
		if n = strings.TrimSpace(n); n != "" {
			set[n] = true
		}
	}
	return set
}

func listScenarios(w io.Writer, all map[string]Scenario) error {
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range names {
		sc := all[n]
		fmt.Fprintf(tw, "%s: %s\n", n, sc.Description)
		for _, s := range sc.Servers {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Note)
		}
		fmt.Fprintf(tw, "  load: -t%d -c%d -d%s, warm-up %s\n", sc.Load.Threads, sc.Load.Conns, wrkDuration(sc.Load.Duration), sc.Load.Warmup)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	return nil
}
