// Package sandboxes holds the definitions of sbxrun's sandbox images and the
// code that reads them.
//
// The directory has one folder per sandbox (base, model-dev, test) with its
// Dockerfile and the scripts it installs, versions.env (every pinned version,
// the single place to bump one), and local/ (the Docker-free build from
// Debian packages). CI builds the Dockerfiles with buildkit
// (.github/workflows/sandboxes.yml); machines without Docker build base and
// test with `make sandbox-images` (mmdebstrap, then hack/ocipack, then
// `sbxrun load`).
//
// The Go side is what both need from the Dockerfiles without a builder:
// Lint runs buildkit's own Dockerfile checks (`docker build --check`), and
// Config computes, with buildkit's own Dockerfile converter, the image
// config (labels, env, user, workdir, entrypoint) a Dockerfile gives its
// final stage, so the local build writes the same config as the real one.
// The tests check that every Dockerfile passes the linter, that the pins in
// the Dockerfiles equal versions.env, that the images' labels, workdirs and
// cache paths agree with sbxrun's built-in profiles, that every script passes
// shellcheck, and how the entrypoint and the model-dev tools behave.
package sandboxes
