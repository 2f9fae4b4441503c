package mediaclient

import "runtime/debug"

// modulePath is this library's module.
const modulePath = "github.com/mxfetch/mxfetch"

// Version is the version of the module this library was built from, as the Go toolchain recorded
// it ("v0.2.0", a pseudo-version, or "(devel)" in a build of the module itself). It is sent in the
// default User-Agent.
var Version = moduleVersion()

func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if info.Main.Path == modulePath {
		return info.Main.Version
	}
	for _, dep := range info.Deps {
		if dep.Path == modulePath {
			if dep.Replace != nil && dep.Replace.Version != "" {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "(devel)"
}
