package gpu

import (
	"path/filepath"
	"slices"

	"github.com/sbxrun/sbxrun/oci"
)

// IfStaleOptions configure SetupIfStale.
type IfStaleOptions struct {
	// Generate is how a stale spec is regenerated. An empty Output means
	// every NVIDIA spec sbxrun generated in SpecDirs (DefaultSpecPath when
	// there is none); an empty DriverRoot means the driver root each spec
	// was generated with.
	Generate Options
	// SpecDirs are the CDI spec directories searched for sbxrun's specs.
	SpecDirs []string
}

// IfStaleResult is what SetupIfStale found for one spec file.
type IfStaleResult struct {
	// Path is the spec file.
	Path string
	// Reasons say why it was stale; none: it was fresh and left alone.
	Reasons []string
	// Setup is the regeneration of a stale spec.
	Setup *Result
}

// SetupIfStale regenerates the spec files that CheckSpecFile finds stale
// and leaves fresh ones alone (`sbxrun gpu setup --if-stale`, which a GPU
// unit runs before it starts). Without an explicit output it checks the
// specs sbxrun generated where they are, with the driver root each was
// generated with, so a spec set up with --output or --driver-root is
// refreshed in place rather than shadowed by a second one at the default
// path. It stops at the first regeneration that fails; the last result
// is then the spec it failed on.
func SetupIfStale(o IfStaleOptions) ([]IfStaleResult, error) {
	paths := []string{o.Generate.Output}
	if o.Generate.Output == "" {
		paths = GeneratedSpecs(o.SpecDirs)
		if len(paths) == 0 {
			paths = []string{DefaultSpecPath}
		}
	}
	var results []IfStaleResult
	for _, p := range paths {
		r := IfStaleResult{Path: p, Reasons: CheckSpecFile(p)}
		if len(r.Reasons) > 0 {
			g := o.Generate
			g.Output = p
			if g.DriverRoot == "" {
				g.DriverRoot = recordedDriverRoot(p)
			}
			res, err := Setup(g)
			if err != nil {
				return append(results, r), err
			}
			r.Setup = res
		}
		results = append(results, r)
	}
	return results, nil
}

// GeneratedSpecs lists the spec files in dirs that sbxrun generated for
// NVIDIA GPUs and that a run would trust: they come from oci.LoadCDI, which
// checks each directory and reads exactly the file it checked.
func GeneratedSpecs(dirs []string) []string {
	var out []string
	for _, s := range trustedSpecs(dirs) {
		if s.GetVendor()+"/"+s.GetClass() == Kind && s.Annotations[AnnotationGenerator] == "sbxrun" && !slices.Contains(out, s.Path) {
			out = append(out, s.Path)
		}
	}
	return out
}

// recordedDriverRoot is the driver root the spec at path was generated
// with; "" when it does not say or a run would not trust it (a file, or a
// directory, others can write must not choose the NVML library root loads).
func recordedDriverRoot(path string) string {
	for _, s := range trustedSpecs([]string{filepath.Dir(path)}) {
		if s.Path == path {
			return s.Annotations[AnnotationDriverRoot]
		}
	}
	return ""
}

// trustedSpecs are the specs of dirs a run would load.
func trustedSpecs(dirs []string) []*oci.CDISpec {
	var out []*oci.CDISpec
	for _, dir := range dirs {
		if !filepath.IsAbs(dir) {
			continue
		}
		reg, err := oci.LoadCDI([]string{dir}, oci.TrustedUIDs())
		if err != nil {
			continue
		}
		out = append(out, reg.Specs()...)
	}
	return out
}
