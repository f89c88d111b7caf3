package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/wasmsrv/wasmsrv/internal/scaffold"
)

const newUsage = `Usage: wasmsrv new [--template NAME] [--module PATH] DIR
       wasmsrv new --update-sdk DIR
       wasmsrv new --list

Write a new app into DIR (created; an existing DIR must be empty), ready for
'wasmsrv run DIR'. A Go app gets its go.mod and the Go SDK of this wasmsrv in
DIR/.wasmsrv/sdk-HASH (commit it: the SDK is not a published module); a C app gets
the SDK's headers. --update-sdk moves an existing app (or any Go module) to the
SDK of this wasmsrv.

Flags:
`

func cmdNew(_ context.Context, opts *Options, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, newUsage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n")
		listTemplates(stderr)
	}
	tmpl := fs.String("template", "go", "the starter app (see --list)")
	fs.StringVar(tmpl, "t", "go", "short for --template")
	module := fs.String("module", "", "the Go module path (default: DIR's name)")
	update := fs.Bool("update-sdk", false, "write this wasmsrv's SDK into the app at DIR and point it there")
	list := fs.Bool("list", false, "list the templates")
	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if *list {
		listTemplates(stdout)
		return nil
	}
	if len(dirs) != 1 {
		fs.Usage()
		return &usageError{"new needs exactly one DIR"}
	}
	dir := dirs[0]
	if *update {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["template"] || set["t"] || set["module"] {
			return &usageError{"--update-sdk takes no --template or --module: it keeps the app as it is"}
		}
		u, err := scaffold.UpdateSDK(dir, versionString(opts.Version))
		if err != nil {
			return err
		}
		switch {
		case u.Current:
			fmt.Fprintf(stdout, "wasmsrv: %s already has the SDK of this wasmsrv (%s)\n", dir, u.To)
		case u.From == "":
			fmt.Fprintf(stdout, "wasmsrv: %s now builds against the SDK of this wasmsrv (%s): wrote %s\n", dir, u.To, strings.Join(u.Changed, ", "))
		default:
			fmt.Fprintf(stdout, "wasmsrv: %s moved from %s to %s: wrote %s\n", dir, u.From, u.To, strings.Join(u.Changed, ", "))
		}
		for _, k := range u.Kept {
			fmt.Fprintf(stdout, "wasmsrv: kept %s: it was edited, or not written by wasmsrv new (delete it once you no longer need it)\n", filepath.Join(dir, k))
		}
		return nil
	}
	if _, err := scaffold.Lookup(*tmpl); err != nil {
		return &usageError{err.Error()}
	}
	c, err := scaffold.New(dir, scaffold.Options{Template: *tmpl, Module: *module, Version: versionString(opts.Version)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wasmsrv: created %s from template %s (%s)\n", dir, c.Template.Name, c.Template.Summary)
	for _, f := range c.Files {
		fmt.Fprintf(stdout, "  %s\n", filepath.Join(dir, f))
	}
	if c.SDKDir != "" {
		fmt.Fprintf(stdout, "  %s/  the Go SDK (commit it with the app; upgrade with: wasmsrv new --update-sdk %s)\n", filepath.Join(dir, c.SDKDir), dir)
	}
	fmt.Fprintf(stdout, "Next:\n  wasmsrv run %s\n", dir)
	for _, t := range c.Template.Try {
		fmt.Fprintf(stdout, "  %s\n", t)
	}
	return nil
}

func listTemplates(w io.Writer) {
	fmt.Fprintln(w, "Templates:")
	for _, t := range scaffold.Templates() {
		fmt.Fprintf(w, "  %-9s %s\n", t.Name, t.Summary)
	}
}

// parseInterspersed parses flags that may come before or after the positional
// arguments (wasmsrv new DIR --template c), and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
