// Package suggest finds what a user probably meant: the known name nearest to a
// misspelt one, for "did you mean" in errors (config keys, template names).
package suggest

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Closest is the candidate nearest to s, "" when none is near enough to be what
// was meant: at most max(2, len(s)/3) edits, and fewer than s has bytes.
func Closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		if d := Distance(s, c); best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) || bestD >= len(s) {
		return ""
	}
	return best
}
