package runtime

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/abi"
)

// ImportProblem is why a guest's import cannot be satisfied.
type ImportProblem int

// Import problems, each with its own message (ImportError.Error).
const (
	// ImportUnknownModule: the module is none the host offers ("env", a typo,
	// "wasi_unstable").
	ImportUnknownModule ImportProblem = iota + 1
	// ImportNotGranted: a plugin module (wasmsrv_<plugin>) the app is not granted.
	ImportNotGranted
	// ImportNoSuchPlugin: a plugin module no plugin of this build provides.
	ImportNoSuchPlugin
	// ImportUnknownFunction: the module is offered but has no such function.
	ImportUnknownFunction
	// ImportBadSignature: the function exists with another signature.
	ImportBadSignature
	// ImportNotFunction: a memory import; the host offers functions only.
	ImportNotFunction
)

// ImportError is a guest import the host cannot satisfy, found when the module is
// loaded. errors.Is(err, ErrNotGuest) holds.
type ImportError struct {
	Module, Name string
	Problem      ImportProblem
	// Want and Got are the signatures of an ImportBadSignature.
	Want, Got string
	// Plugins are the plugins this build has, for ImportNoSuchPlugin.
	Plugins []string
	// Command marks a WASI command (CGI mode), which may import only WASI.
	Command bool
}

func (e *ImportError) Unwrap() error { return ErrNotGuest }

func (e *ImportError) Error() string {
	return ErrNotGuest.Error() + ": " + e.detail()
}

func (e *ImportError) detail() string {
	imp := e.Module + "." + e.Name
	switch e.Problem {
	case ImportUnknownModule:
		offered := "wasmsrv, wasi_snapshot_preview1 and the plugins granted to the app (wasmsrv_<plugin>)"
		if e.Command {
			offered = "wasi_snapshot_preview1 only (a CGI-mode command cannot use the wasmsrv ABI or plugins)"
		}
		msg := fmt.Sprintf("imports %s from module %q, which this host does not provide: guests import from %s", imp, e.Module, offered)
		switch e.Module {
		case "env":
			msg += `; an "env" import is usually a function the toolchain left undefined (C: a missing definition or library, linked with --allow-undefined; Go: //go:wasmimport env; Emscripten output is not a WASI module)`
		case "wasi_unstable":
			msg += "; wasi_unstable is WASI's preview 0: rebuild for wasi_snapshot_preview1"
		}
		return msg
	case ImportNotGranted:
		plugin := strings.TrimPrefix(e.Module, pluginPrefix)
		return fmt.Sprintf("imports plugin %q (module %s, function %s), which is not granted to this app (grant it with --grant %s or the app's grants in the config file)",
			plugin, e.Module, e.Name, plugin)
	case ImportNoSuchPlugin:
		plugin := strings.TrimPrefix(e.Module, pluginPrefix)
		return fmt.Sprintf("imports %s: this build has no plugin %q (it has: %s)", imp, plugin, strings.Join(e.Plugins, ", "))
	case ImportUnknownFunction:
		switch {
		case e.Module == abi.ImportModule:
			return fmt.Sprintf("imports unknown host function %s (this host speaks ABI v1)", imp)
		case e.Module == wasi_snapshot_preview1.ModuleName:
			return fmt.Sprintf("imports %s, which is not a WASI preview 1 function", imp)
		default:
			plugin := strings.TrimPrefix(e.Module, pluginPrefix)
			return fmt.Sprintf("imports %s, which plugin %q does not have (see plugins/%s/ABI.md for its functions)", imp, plugin, plugin)
		}
	case ImportBadSignature:
		return fmt.Sprintf("import %s has signature %s, want %s", imp, e.Got, e.Want)
	case ImportNotFunction:
		return fmt.Sprintf("imports memory %s: the host provides functions only; the guest must define and export its own memory (C: drop -Wl,--import-memory)", imp)
	}
	return "imports " + imp
}

const pluginPrefix = "wasmsrv_"

// provided says what functions a module this host offers exports (nil, false for a
// module it does not offer).
type provided func(module string) (map[string]api.FunctionDefinition, bool)

// hostModules is what rt has instantiated under a name: the host modules.
func hostModules(rt wazero.Runtime) provided {
	return func(module string) (map[string]api.FunctionDefinition, bool) {
		m := rt.Module(module)
		if m == nil {
			return nil, false
		}
		return m.ExportedFunctionDefinitions(), true
	}
}

// checkImports checks every import of a guest against what the runtime provides.
// plugins, if not nil, lists the plugins of this build, so that a plugin module no
// plugin provides is told apart from one not granted.
func checkImports(fns []api.FunctionDefinition, mems []api.MemoryDefinition, have provided, plugins []string, command bool) error {
	if len(mems) > 0 {
		mod, name, _ := mems[0].Import()
		return &ImportError{Module: mod, Name: name, Problem: ImportNotFunction, Command: command}
	}
	for _, imp := range fns {
		mod, name, _ := imp.Import()
		e := &ImportError{Module: mod, Name: name, Command: command}
		defs, ok := have(mod)
		if !ok {
			e.Problem = ImportUnknownModule
			if plugin, isPlugin := strings.CutPrefix(mod, pluginPrefix); isPlugin && !command {
				e.Problem = ImportNotGranted
				if plugins != nil && !slices.Contains(plugins, plugin) {
					e.Problem, e.Plugins = ImportNoSuchPlugin, plugins
				}
			}
			return e
		}
		def, ok := defs[name]
		if !ok {
			e.Problem = ImportUnknownFunction
			return e
		}
		if !slices.Equal(def.ParamTypes(), imp.ParamTypes()) || !slices.Equal(def.ResultTypes(), imp.ResultTypes()) {
			e.Problem = ImportBadSignature
			e.Got = sigString(imp.ParamTypes(), imp.ResultTypes())
			e.Want = sigString(def.ParamTypes(), def.ResultTypes())
			return e
		}
	}
	return nil
}
