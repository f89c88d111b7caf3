package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
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
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, overrides from the environment (environ: os.Environ through
// env.ToMap in the CLI; WASMSRV_LISTEN and the others of SiteEnv), defaults and
// validates the file at path. The returned error joins every *Error found.
func Load(path string, environ map[string]string) (*Config, error) {
	cfg, errs := Check(path, environ)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return cfg, nil
}

// Parse is Load on bytes already read; path picks the format by extension
// (.toml, .yaml, .yml) and is used in messages.
func Parse(path string, data []byte, environ map[string]string) (*Config, error) {
	cfg, errs := CheckBytes(path, data, environ)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return cfg, nil
}

func joinErrors(errs []*Error) error {
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// Check is Load reporting every problem: the config as far as it could be read
// (nil when the file is not TOML or YAML at all) and each error with its file,
// line and key, in the order of the file. `wasmsrv check` goes on to check the
// apps of a config that has errors elsewhere.
func Check(path string, environ map[string]string) (*Config, []*Error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []*Error{{File: path, Msg: oneLine(err.Error())}}
	}
	return CheckBytes(path, data, environ)
}

// CheckBytes is Check on bytes already read.
func CheckBytes(path string, data []byte, environ map[string]string) (*Config, []*Error) {
	cfg := &Config{Path: path}
	var (
		loc  locator
		tree map[string]any
		errs []*Error
	)
	add := func(key, msg string) { errs = append(errs, &Error{File: path, Key: key, Msg: msg}) }
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		if err := toml.Unmarshal(data, &tree); err != nil {
			return nil, []*Error{tomlSyntaxError(path, err)}
		}
		loc = tomlLines(data)
		shape(tree, reflect.TypeFor[Config](), "", add)
		pruned, err := toml.Marshal(tree)
		if err == nil {
			err = decodeTOML(path, pruned, cfg)
		}
		if err != nil {
			errs = append(errs, &Error{File: path, Line: 1, Msg: oneLine(err.Error())})
		}
	case ".yaml", ".yml":
		f, err := parser.ParseBytes(data, 0)
		if err != nil {
			return nil, []*Error{asError(yamlError(path, nil, err))}
		}
		if err := yaml.Unmarshal(data, &tree); err != nil {
			return nil, []*Error{asError(yamlError(path, f, err))}
		}
		loc = yamlLines(f)
		shape(tree, reflect.TypeFor[Config](), "", add)
		pruned, err := yaml.Marshal(tree)
		if err == nil {
			err = yaml.UnmarshalWithOptions(pruned, cfg, yaml.DisallowUnknownField(), yaml.Strict())
		}
		if err != nil {
			errs = append(errs, &Error{File: path, Line: 1, Msg: oneLine(cleanYAMLMsg(err.Error()))})
		}
	default:
		return nil, []*Error{{File: path, Msg: fmt.Sprintf("unknown config format %q (use .toml, .yaml or .yml)", filepath.Ext(path))}}
	}
	cfg.Path = path
	cfg.lines = loc
	appDefaults(cfg, tree)
	if err := applyEnv(cfg, environ); err != nil {
		errs = append(errs, &Error{File: path, Msg: err.Error()})
	}
	cfg.defaults()
	for _, e := range cfg.validate() {
		e.File = path
		errs = append(errs, e)
	}
	for _, e := range errs {
		if e.Line == 0 && e.Key != "" {
			// A key the file does not have (nor any parent of it) is
			// missing from the whole file: point at its top.
			e.Line = max(loc.line(e.Key), 1)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return cfg, errs
}

// Line is the line of key ("apps.web.mode") in the file the config was read from,
// or of its closest parent the file has; 1 if none (0 for a config not read from
// a file).
func (c *Config) Line(key string) int {
	if c.lines == nil {
		return 0
	}
	return max(c.lines.line(key), 1)
}

// ErrorAt is an *Error for key with the config's file and the key's line.
func (c *Config) ErrorAt(key string, err error) *Error {
	return &Error{File: c.Path, Line: c.Line(key), Key: key, Msg: oneLine(err.Error())}
}

// appDefaults gives every app the default (DefaultApp) of each setting its table
// leaves out. tree is the document as decoded, to tell a key left out from a key
// set to its type's zero.
func appDefaults(cfg *Config, tree map[string]any) {
	if len(cfg.Apps) == 0 {
		return
	}
	tables, _ := tree["apps"].(map[string]any)
	def := reflect.ValueOf(DefaultApp())
	t := def.Type()
	for name, a := range cfg.Apps {
		present, _ := tables[name].(map[string]any)
		v := reflect.ValueOf(&a).Elem()
		for i := range t.NumField() {
			k, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			if k == "" || k == "-" {
				continue
			}
			if _, ok := present[k]; !ok {
				v.Field(i).Set(def.Field(i))
			}
		}
		cfg.Apps[name] = a
	}
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Msg: oneLine(err.Error())}
}

// tomlSyntaxError places a TOML parse error.
func tomlSyntaxError(path string, err error) *Error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: path, Line: row, Key: strings.Join(de.Key(), "."), Msg: oneLine(de.Error())}
	}
	return &Error{File: path, Line: 1, Msg: oneLine(err.Error())}
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

// exact is the line of the node at key, 0 if none. go-yaml's path parser panics
// on some keys a file may hold ("0[0"): such a key has no line of its own.
func (y yamlLocator) exact(key string) (line int) {
	defer func() {
		if recover() != nil {
			line = 0
		}
	}()
	p, err := yaml.PathString("$." + key)
	if err != nil {
		return 0
	}
	if n, err := p.FilterFile(y.f); err == nil && n != nil {
		if t := n.GetToken(); t != nil {
			return t.Position.Line
		}
	}
	return 0
}

func yamlLines(f *ast.File) yamlLocator { return yamlLocator{f} }

func (y yamlLocator) line(key string) int {
	for k := key; k != ""; {
		if l := y.exact(k); l > 0 {
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
