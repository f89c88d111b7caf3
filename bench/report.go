package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Section is one scenario's measurements, ready to render.
type Section struct {
	Scenario Scenario
	Load     Load
	Results  []Result
}

// Verdicts checks every target of the section.
func (s Section) Verdicts() []Verdict {
	out := make([]Verdict, 0, len(s.Scenario.Targets))
	for _, t := range s.Scenario.Targets {
		out = append(out, t.Check(s.Scenario.Subject, s.Results))
	}
	return out
}

// writeMarkdown renders a full report: the run's context, then one table per scenario.
func writeMarkdown(w io.Writer, m Machine, sections []Section) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# wasmsrv benchmark\n\n%s\n", m)
	b.WriteString("Ratios compare servers measured in this run, one after another on the same machine; " +
		"absolute numbers drift between runs on shared machines.\n")
	for _, s := range sections {
		writeSection(&b, s)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func writeSection(b *strings.Builder, s Section) {
	sc, l := s.Scenario, s.Load
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n", sc.Name, sc.Description)
	fmt.Fprintf(b, "`wrk -t%d -c%d -d%s --latency` on `GET %s`, after a %s warm-up%s; CPU/req is the server's "+
		"process tree's CPU time (user + system) during the measured run divided by its requests; RSS summed over "+
		"the process tree after the run.\n\n", l.Threads, l.Conns, wrkDuration(l.Duration), sc.Path, l.Warmup, runsNote(l.Runs))
	writeTable(b, tableRows(s))
	verdicts := s.Verdicts()
	met := 0
	for _, v := range verdicts {
		if v.Met {
			met++
		}
	}
	if len(verdicts) > 0 {
		fmt.Fprintf(b, "\nTargets for %s met: %d of %d.\n", sc.Subject, met, len(verdicts))
	}
}

func runsNote(runs int) string {
	if runs <= 1 {
		return ""
	}
	return fmt.Sprintf("; median by rps of %d runs per server, taken in turns", runs)
}

// tableRows builds the header and one row per server.
func tableRows(s Section) [][]string {
	sc := s.Scenario
	rows := [][]string{{
		"server", "config", "rps", "p50", "p99", "CPU/req", "RSS (procs)", "errors",
		"rps vs " + sc.Baseline, "p99 vs " + sc.Baseline, sc.Subject + " rps ÷ this", "targets",
	}}
	base, hasBase := findResult(s.Results, sc.Baseline)
	subj, hasSubj := findResult(s.Results, sc.Subject)
	verdicts := s.Verdicts()
	for _, r := range s.Results {
		row := []string{r.Server.Name, r.Server.Note}
		switch {
		case r.Skipped != "":
			row = append(row, r.Skipped, "", "", "", "", "", "", "", "")
		case r.Err != nil:
			row = append(row, "FAILED: "+oneLine(r.Err.Error(), 160), "", "", "", "", "", "", "", "")
		default:
			row = append(row,
				formatCount(r.Wrk.RPS()), formatLatency(r.Wrk.P50), formatLatency(r.Wrk.P99),
				cpuPerRequest(r),
				fmt.Sprintf("%s (%d)", formatMB(float64(r.RSS)), r.Procs), formatErrors(r.Wrk),
				ratioCell(r.Wrk.RPS(), base.Wrk.RPS(), hasBase),
				ratioCell(float64(r.Wrk.P99), float64(base.Wrk.P99), hasBase),
				ratioCell(subj.Wrk.RPS(), r.Wrk.RPS(), hasSubj))
		}
		row = append(row, targetCell(verdicts, r.Server.Name))
		rows = append(rows, row)
	}
	return rows
}

func targetCell(verdicts []Verdict, row string) string {
	var parts []string
	for _, v := range verdicts {
		if v.Target.Row == row {
			parts = append(parts, v.String())
		}
	}
	return strings.Join(parts, "; ")
}

func ratioCell(a, b float64, ok bool) string {
	if !ok {
		return "—"
	}
	r, ok := ratio(a, b)
	if !ok {
		return "—"
	}
	return formatRatio(r)
}

// writeTable writes rows as a Markdown table padded so it also reads well in a terminal.
func writeTable(b *strings.Builder, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(b, " %s%s |", c, strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString("\n")
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for i, w := range widths {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, row := range rows[1:] {
		line(row)
	}
}

// formatCount renders a rate as an integer with thousands separators: 74,213.
func formatCount(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatLatency renders milliseconds with precision suited to the magnitude.
func formatLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// formatErrors summarises wrk's failed responses and socket errors.
func formatErrors(r WrkResult) string {
	if r.Status == 0 && r.SocketErrors() == 0 {
		return "0"
	}
	return fmt.Sprintf("status≥400 %d, socket %d (c%d r%d w%d t%d)",
		r.Status, r.SocketErrors(), r.Connect, r.Read, r.Write, r.Timeout)
}

// oneLine flattens s for a table cell and cuts it to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "|", "/")), " ")
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n]) + "…"
	}
	return s
}

// cpuPerRequest is the server's CPU time per request in the measured run.
func cpuPerRequest(r Result) string {
	if r.CPU <= 0 || r.Wrk.Requests <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f µs", float64(r.CPU.Microseconds())/float64(r.Wrk.Requests))
}
