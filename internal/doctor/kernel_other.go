//go:build !linux

package doctor

func kernelChecks() []Result {
	return []Result{{"runtime", Warn, "ward run needs Linux (namespaces, overlayfs, cgroup v2)", "run ward run on a Linux host"}}
}

func clockSync() (Result, bool) { return Result{}, false }
