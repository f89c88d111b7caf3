package main

import "fmt"

// validate catches scenario mistakes before anything is built: results, ratios and
// targets are looked up by server name, so names must be unique and every name a
// scenario refers to must be one of its servers.
func validate(sc Scenario) error {
	names := map[string]bool{}
	for _, s := range sc.Servers {
		if s.Name == "" || s.Launch == nil {
			return fmt.Errorf("scenario %s: every server needs a Name and a Launch", sc.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("scenario %s: two servers named %q", sc.Name, s.Name)
		}
		names[s.Name] = true
	}
	refs := []string{sc.Baseline, sc.Subject}
	for _, t := range sc.Targets {
		refs = append(refs, t.Row)
	}
	for _, n := range refs {
		if !names[n] {
			return fmt.Errorf("scenario %s: refers to server %q, which it does not run", sc.Name, n)
		}
	}
	if sc.Load.Threads < 1 || sc.Load.Conns < sc.Load.Threads || sc.Load.Duration <= 0 {
		return fmt.Errorf("scenario %s: load needs threads ≥ 1, conns ≥ threads, a duration", sc.Name)
	}
	return nil
}
