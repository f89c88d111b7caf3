package runtime

import (
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/wasmsrv/wasmsrv/runtime/internal/guestfs"
)

// mounts are an app's open directory mounts, shared by all its instances.
type mounts []*guestfs.FS

// withMounts opens the configured directories and gives them to the module. Each is
// a guestfs.FS: every path the guest opens resolves inside its directory, symbolic
// links included (wazero's own DirFS follows links out of it).
func withMounts(mc wazero.ModuleConfig, ms []Mount) (wazero.ModuleConfig, mounts, error) {
	if len(ms) == 0 {
		return mc, nil, nil
	}
	fsc := wazero.NewFSConfig()
	opened := make(mounts, 0, len(ms))
	for _, m := range ms {
		fs, err := guestfs.Open(m.HostDir, m.ReadOnly)
		if err != nil {
			_ = opened.close()
			return nil, nil, fmt.Errorf("mount %s at %s: %w", m.HostDir, m.GuestDir, err)
		}
		opened = append(opened, fs)
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(fs, m.GuestDir)
	}
	return mc.WithFSConfig(fsc), opened, nil
}

// close releases the mounts; call it once no instance uses them.
func (m mounts) close() error {
	var errs []error
	for _, fs := range m {
		errs = append(errs, fs.Close())
	}
	return errors.Join(errs...)
}
