package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Error is one problem in a config: the file, the line (0 when unknown,
// e.g. for environment overrides) and the key path such as
// "routes[2].upstream".
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Key + ": " + e.Msg
}

// Load reads, overrides from env (lookup may be os.LookupEnv), defaults and
// validates the file at path. The returned error joins every *Error found.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, lookup)
}

// Parse is Load on bytes already read; path picks the format by extension
// (.toml, .yaml, .yml) and is used in messages.
func Parse(path string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{Path: path}
	var loc locator
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		if err := decodeTOML(path, data, cfg); err != nil {
			return nil, err
		}
		loc = tomlLines(data)
	case ".yaml", ".yml":
		f, err := parser.ParseBytes(data, 0)
		if err != nil {
			return nil, yamlError(path, nil, err)
		}
		if err := yaml.UnmarshalWithOptions(data, cfg, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
			return nil, yamlError(path, f, err)
		}
		loc = yamlLines(f)
	default:
		return nil, fmt.Errorf("%s: unknown config format %q (use .toml, .yaml or .yml)", path, filepath.Ext(path))
	}
	cfg.Path = path
	var errs []error
	if lookup != nil {
		errs = append(errs, applyEnv(cfg, lookup)...)
	}
	cfg.defaults()
	for _, e := range cfg.validate() {
		e.File = path
		if e.Line == 0 && !strings.HasPrefix(e.Key, "WASMSRV_") {
			// A key the file does not have (nor any parent of it) is
			// missing from the whole file: point at its top.
			e.Line = max(loc.line(e.Key), 1)
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func decodeTOML(path string, data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			row, _ := de.Position()
			errs = append(errs, &Error{File: path, Line: row, Key: strings.Join(de.Key(), "."), Msg: "unknown key"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: path, Line: row, Key: strings.Join(de.Key(), "."), Msg: de.Error()}
	}
	// The decoder said nothing about where: point at the top of the file.
	return &Error{File: path, Line: 1, Msg: oneLine(err.Error())}
}

// oneLine keeps a decoder's message on the one line `wasmsrv check` gives each
// error.
func oneLine(msg string) string {
	return strings.Join(strings.Fields(msg), " ")
}

// locator maps a key path ("routes[1].upstream") to a 1-based line, 0 if
// unknown. Shorter prefixes are tried so that a missing key points at its
// parent table.
type locator interface{ line(key string) int }

type lineMap map[string]int

func (m lineMap) line(key string) int {
	for k := key; k != ""; {
		if l, ok := m[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// tomlLines indexes every key and array element of a TOML document.
func tomlLines(data []byte) lineMap {
	m := lineMap{}
	var p unstable.Parser
	p.Reset(data)
	arrayCount := map[string]int{}
	prefix := ""
	lineOf := func(n *unstable.Node) int {
		if len(n.Data) > 0 {
			r := p.Range(n.Data)
			return p.Shape(r).Start.Line
		}
		return p.Shape(n.Raw).Start.Line
	}
	keyPath := func(n *unstable.Node) (string, int) {
		var parts []string
		line := 0
		it := n.Key()
		for it.Next() {
			k := it.Node()
			if line == 0 {
				line = lineOf(k)
			}
			parts = append(parts, string(k.Data))
		}
		return strings.Join(parts, "."), line
	}
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "." + b
	}
	var walkValue func(path string, v *unstable.Node)
	walkValue = func(path string, v *unstable.Node) {
		switch v.Kind {
		case unstable.Array:
			i := 0
			it := v.Children()
			for it.Next() {
				c := it.Node()
				ip := path + "[" + strconv.Itoa(i) + "]"
				if _, ok := m[ip]; !ok && len(c.Data) > 0 {
					m[ip] = lineOf(c)
				}
				walkValue(ip, c)
				i++
			}
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				k, l := keyPath(kv)
				kp := join(path, k)
				m[kp] = l
				if _, ok := m[path]; !ok {
					m[path] = l
				}
				walkValue(kp, kv.Value())
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			k, l := keyPath(e)
			prefix = indexed(k, arrayCount)
			m[prefix] = l
		case unstable.ArrayTable:
			k, l := keyPath(e)
			base := k
			if i := strings.LastIndexByte(k, '.'); i >= 0 {
				base = indexed(k[:i], arrayCount) + k[i:]
			}
			idx := arrayCount[base]
			arrayCount[base] = idx + 1
			prefix = base + "[" + strconv.Itoa(idx) + "]"
			m[prefix] = l
			if _, ok := m[base]; !ok {
				m[base] = l
			}
		case unstable.KeyValue:
			k, l := keyPath(e)
			kp := join(prefix, k)
			m[kp] = l
			walkValue(kp, e.Value())
		}
	}
	return m
}

// indexed rewrites "routes.cache" to "routes[N].cache" when routes is an
// array of tables whose last element is N.
func indexed(key string, counts map[string]int) string {
	parts := strings.Split(key, ".")
	out := ""
	for _, p := range parts {
		if out != "" {
			out += "."
		}
		out += p
		if n, ok := counts[out]; ok && n > 0 {
			out += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return out
}

type yamlLocator struct{ f *ast.File }

func yamlLines(f *ast.File) yamlLocator { return yamlLocator{f} }

func (y yamlLocator) line(key string) int {
	for k := key; k != ""; {
		if p, err := yaml.PathString("$." + k); err == nil {
			if n, err := p.FilterFile(y.f); err == nil && n != nil {
				if t := n.GetToken(); t != nil {
					return t.Position.Line
				}
			}
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

var (
	goTypeMsg = regexp.MustCompile(`cannot unmarshal (.+?) into Go (?:struct field|value) \S* ?of type (\S+)`)
	quoted    = regexp.MustCompile(`"([^"]*)"`)
)

// yamlError turns a go-yaml decode error into an *Error naming the key path
// and line, in the same shape as TOML and validation errors.
func yamlError(path string, f *ast.File, err error) error {
	msg := err.Error()
	var node ast.Node
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tok := ye.GetToken(); tok != nil {
			node = findNode(f, func(n ast.Node) bool {
				t := n.GetToken()
				return t != nil && t.Position.Line == tok.Position.Line && t.Position.Column == tok.Position.Column
			})
			if node == nil {
				return &Error{File: path, Line: tok.Position.Line, Msg: cleanYAMLMsg(msg)}
			}
		}
	} else if m := quoted.FindStringSubmatch(msg); m != nil {
		// Errors from our own UnmarshalText (sizes, durations) carry no
		// position: find the scalar holding the bad value.
		node = findNode(f, func(n ast.Node) bool {
			_, isMap := n.(*ast.MappingValueNode)
			return !isMap && n.GetToken() != nil && n.GetToken().Value == m[1]
		})
	}
	if node == nil {
		// The decoder said nothing about where: point at the top of the file.
		return &Error{File: path, Line: 1, Msg: oneLine(cleanYAMLMsg(msg))}
	}
	return &Error{File: path, Line: node.GetToken().Position.Line, Key: strings.TrimPrefix(strings.TrimPrefix(node.GetPath(), "$"), "."), Msg: cleanYAMLMsg(msg)}
}

// cleanYAMLMsg replaces Go type names with what a config author wrote.
func cleanYAMLMsg(msg string) string {
	if m := goTypeMsg.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: got %s, want %s", yamlKind(m[1]), yamlKind(m[2]))
	}
	return msg
}

func yamlKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "config.") || strings.HasPrefix(goType, "*config."):
		return "a mapping"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return goType
}

type finder struct {
	match func(ast.Node) bool
	found ast.Node
}

func (f *finder) Visit(n ast.Node) ast.Visitor {
	if f.found != nil || n == nil {
		return nil
	}
	if f.match(n) {
		f.found = n
		return nil
	}
	return f
}

func findNode(file *ast.File, match func(ast.Node) bool) ast.Node {
	if file == nil {
		return nil
	}
	fd := &finder{match: match}
	for _, d := range file.Docs {
		if d.Body != nil {
			ast.Walk(fd, d.Body)
		}
	}
	return fd.found
}
