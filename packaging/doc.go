// Package packaging holds sbxrun's package declaration (nfpm.yaml, built
// by `make deb` through hack/package), the example profile file and the
// copyright file the package ships, and the test that installs the
// package in a fresh Debian 12 root (`make package-test`). It has no Go
// code of its own.
package packaging
