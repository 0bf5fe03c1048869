package gpu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"

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

// GeneratedSpecs lists the trusted spec files in dirs (not their
// subdirectories, as CDI reads them) that sbxrun generated for NVIDIA GPUs.
func GeneratedSpecs(dirs []string) []string {
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if !e.Type().IsRegular() || (ext != ".yaml" && ext != ".json") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if recordedGenerator(p) == "sbxrun" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// recordedDriverRoot is the driver root a trusted sbxrun spec at path was
// generated with; "" when it does not say or is not trusted (a file others
// can write must not choose what root mounts into sandboxes).
func recordedDriverRoot(path string) string {
	s := trustedSpec(path)
	if s == nil {
		return ""
	}
	return s.Annotations[AnnotationDriverRoot]
}

// recordedGenerator is the generator annotation of a trusted NVIDIA spec at
// path; "" for any other file.
func recordedGenerator(path string) string {
	s := trustedSpec(path)
	if s == nil || !strings.HasPrefix(s.Kind, "nvidia.com/") {
		return ""
	}
	return s.Annotations[AnnotationGenerator]
}

// trustedSpec reads the spec at path when it is a regular file sbxrun
// trusts (owner, mode) and parses; nil otherwise.
func trustedSpec(path string) *cdi.Spec {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if oci.CheckTrustedFile("CDI spec", path, fi, oci.TrustedUIDs()) != nil {
		return nil
	}
	s, err := cdi.ReadSpec(path, 0)
	if err != nil {
		return nil
	}
	return s
}
