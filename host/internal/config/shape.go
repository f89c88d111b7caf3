package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/wasmsrv/wasmsrv/internal/suggest"
)

// shape walks a decoded document (maps, lists and scalars, as a TOML or YAML
// decoder gives them untyped) against the Go type it will be decoded into, the
// way the strict decoder would, but reporting every problem instead of the first:
// unknown keys (with the closest known one), values of the wrong kind and values a
// type's own parser refuses (sizes, durations, modes). What it reports is cut from
// the document, so that the rest still decodes and is validated; it returns v as it
// must be decoded (a size written as a bare number of bytes becomes its string
// form), and false when v itself must go. Messages speak of the file's kinds, never of Go types.
// Runs once per load; the request path never sees it.
func shape(v any, t reflect.Type, key string, add func(key, msg string)) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil, false // YAML's null: as if absent
	}
	if t.Kind() == reflect.Interface {
		return v, true
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		if t == reflect.TypeFor[Size]() && isInteger(v) {
			v = fmt.Sprint(v) // bytes
		}
		s, ok := v.(string)
		if !ok {
			add(key, fmt.Sprintf("wrong type: got %s, want %s", kindOf(v), textKind(t)))
			return nil, false
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			add(key, err.Error())
			return nil, false
		}
		return v, true
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			add(key, fmt.Sprintf("wrong type: got %s, want a table", kindOf(v)))
			return nil, false
		}
		fields := tableFields(t)
		for _, k := range sortedKeys(m) {
			ck := joinKey(key, k)
			ft, ok := fields[k]
			if !ok {
				msg := "unknown key"
				if s := suggest.Closest(k, sortedKeys(fields)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				add(ck, msg)
				delete(m, k)
				continue
			}
			if nv, ok := shape(m[k], ft, ck, add); ok {
				m[k] = nv
			} else {
				delete(m, k)
			}
		}
		return v, true
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			add(key, fmt.Sprintf("wrong type: got %s, want a table", kindOf(v)))
			return nil, false
		}
		for _, k := range sortedKeys(m) {
			if nv, ok := shape(m[k], t.Elem(), joinKey(key, k), add); ok {
				m[k] = nv
			} else {
				delete(m, k)
			}
		}
		return v, true
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			add(key, fmt.Sprintf("wrong type: got %s, want a list", kindOf(v)))
			return nil, false
		}
		kept := l[:0:0]
		for i, e := range l {
			if nv, ok := shape(e, t.Elem(), key+"["+strconv.Itoa(i)+"]", add); ok {
				kept = append(kept, nv)
			}
		}
		if len(kept) != len(l) {
			return nil, false // a list with a bad element is dropped whole: its indices must not shift
		}
		return kept, true
	case reflect.String:
		if _, ok := v.(string); ok {
			return v, true
		}
		add(key, fmt.Sprintf("wrong type: got %s, want a string", kindOf(v)))
		return nil, false
	case reflect.Bool:
		if _, ok := v.(bool); ok {
			return v, true
		}
		add(key, fmt.Sprintf("wrong type: got %s, want true or false", kindOf(v)))
		return nil, false
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isInteger(v) {
			return v, true
		}
		add(key, fmt.Sprintf("wrong type: got %s, want a whole number", kindOf(v)))
		return nil, false
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(float64); ok || isInteger(v) {
			return v, true
		}
		add(key, fmt.Sprintf("wrong type: got %s, want a number", kindOf(v)))
		return nil, false
	}
	return v, true
}

// tableFields maps the file keys of struct t to their types (embedded structs
// without a key of their own are flattened; "-" is no key).
func tableFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct:
			for k, ft := range tableFields(f.Type) {
				out[k] = ft
			}
		case name != "":
			out[name] = f.Type
		}
	}
	return out
}

func joinKey(parent, k string) string {
	if k == "" || strings.ContainsAny(k, ". \"[]") {
		k = strconv.Quote(k)
	}
	if parent == "" {
		return k
	}
	return parent + "." + k
}

func isInteger(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

// kindOf names a decoded value's kind as a config author sees it.
func kindOf(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("%t", v)
	case float32, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	if isInteger(v) {
		return fmt.Sprintf("the number %v", v)
	}
	return "a date or time"
}

func textKind(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Size]():
		return `a size in quotes such as "64KiB"`
	case reflect.TypeFor[Duration]():
		return `a duration in quotes such as "5s"`
	}
	return "a string"
}
