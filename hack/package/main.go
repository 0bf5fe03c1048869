// Command package builds sbxrun's Debian package with nfpm from the
// declaration packaging/nfpm.yaml and a staged install tree (make deb runs
// `make install DESTDIR=bin/pkgroot PREFIX=/usr` first), so the package
// holds exactly what make install installs.
//
//	go run ./hack/package -root bin/pkgroot -config packaging/nfpm.yaml -version "$(git describe --tags --always --dirty)" -o dist
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	root := flag.String("root", "bin/pkgroot", "staged install tree (make install DESTDIR=...)")
	config := flag.String("config", "packaging/nfpm.yaml", "nfpm declaration")
	describe := flag.String("version", "", "`git describe --tags --always --dirty` output")
	out := flag.String("o", "dist", "output directory")
	format := flag.String("format", "deb", "package format")
	flag.Parse()
	path, err := build(*root, *config, *describe, *out, *format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hack/package: "+err.Error())
		os.Exit(1)
	}
	fmt.Println(path)
}

func build(root, config, describe, out, format string) (string, error) {
	version, err := DebianVersion(describe)
	if err != nil {
		return "", err
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(absRoot, "usr", "bin", "sbxrun")); err != nil {
		return "", fmt.Errorf("no staged binary under %q: run `make install DESTDIR=%s PREFIX=/usr` first (make deb does)", root, root)
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(config, func(k string) string {
		if k == "ROOT" {
			return absRoot
		}
		return os.Getenv(k)
	})
	if err != nil {
		return "", fmt.Errorf("reading %q: %w", config, err)
	}
	info, err := cfg.Get(format)
	if err != nil {
		return "", err
	}
	// nfpm expands variables in a few fields only: ${ROOT} in a source
	// path is the staged tree.
	for _, c := range info.Contents {
		c.Source = strings.ReplaceAll(c.Source, "${ROOT}", absRoot)
	}
	info.Version = version
	info.VersionSchema = "none"
	// Get applied the defaults once (a v0.0.0-rc0 version): drop its parts.
	info.Prerelease, info.VersionMetadata, info.Release, info.Epoch = "", "", "", ""
	if err := writeChangelog(absRoot, info.Name, version, describe, info.Maintainer); err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("%q: %w", config, err)
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(out, pkg.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("building %q: %w", path, err)
	}
	return path, f.Close()
}

// writeChangelog writes the changelog.gz Debian policy asks of
// every package (one entry, for this build; a native package, as the
// version has no Debian revision), gzipped as lintian wants it.
func writeChangelog(root, name, version, describe, maintainer string) error {
	dir := filepath.Join(root, "usr", "share", "doc", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	text := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n",
		name, version, describe, maintainer, time.Now().UTC().Format(time.RFC1123Z))
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if _, err := zw.Write([]byte(text)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "changelog.gz"), b.Bytes(), 0o644)
}

var (
	describeRE   = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9A-Za-z.-]+))?$`)
	commitsRE    = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)$`)
	hashRE       = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	debVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebianVersion turns `git describe --tags --always --dirty` output into
// a Debian version that sorts as the releases do: v1.2.3 is 1.2.3,
// v1.2.3-rc1 is 1.2.3~rc1 (before 1.2.3), v1.2.3-4-gabc is 1.2.3+git4.abc
// (after it), a commit without a tag is 0~git.abc, and -dirty adds
// ".dirty" (or "+dirty").
func DebianVersion(describe string) (string, error) {
	d, dirty := strings.CutSuffix(strings.TrimSpace(describe), "-dirty")
	var v, since string
	if m := commitsRE.FindStringSubmatch(d); m != nil {
		d, since = m[1], "+git"+m[2]+"."+m[3]
	}
	switch m := describeRE.FindStringSubmatch(d); {
	case d == "":
		return "", fmt.Errorf("no version given: pass -version \"$(git describe --tags --always --dirty)\"")
	case hashRE.MatchString(d) && since == "":
		v = "0~git." + d
	case m != nil:
		v = m[1]
		if m[2] != "" {
			v += "~" + strings.ReplaceAll(m[2], "-", ".")
		}
		v += since
	default:
		return "", fmt.Errorf("version %q is not a tag like v1.2.3 or a commit: tag the release as vMAJOR.MINOR.PATCH", describe)
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if !debVersionRE.MatchString(v) {
		return "", fmt.Errorf("version %q makes %q, which Debian does not accept: tag the release as vMAJOR.MINOR.PATCH", describe, v)
	}
	return v, nil
}
