package wasmsrv

import "github.com/wasmsrv/wasmsrv/abi"

// Header is an ordered list of header fields. Request headers arrive with lower-case
// names; lookups are case-insensitive.
type Header struct {
	list []abi.Header
}

// Get returns the first value of name, or "".
func (h *Header) Get(name string) string {
	for i := range h.list {
		if equalFold(h.list[i].Name, name) {
			return h.list[i].Value
		}
	}
	return ""
}

// Values returns every value of name in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for i := range h.list {
		if equalFold(h.list[i].Name, name) {
			vs = append(vs, h.list[i].Value)
		}
	}
	return vs
}

// Set replaces all values of name with value.
func (h *Header) Set(name, value string) {
	h.Del(name)
	h.list = append(h.list, abi.Header{Name: name, Value: value})
}

// Add appends a value for name, keeping existing ones.
func (h *Header) Add(name, value string) {
	h.list = append(h.list, abi.Header{Name: name, Value: value})
}

// Del removes every value of name.
func (h *Header) Del(name string) {
	out := h.list[:0]
	for _, f := range h.list {
		if !equalFold(f.Name, name) {
			out = append(out, f)
		}
	}
	h.list = out
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.list) }

// Each calls fn for each field in order.
func (h *Header) Each(fn func(name, value string)) {
	for _, f := range h.list {
		fn(f.Name, f.Value)
	}
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
