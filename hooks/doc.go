// Package hooks will hold the OCI hook entry points that the sbxrun binary
// serves itself, so that a GPU host needs only the driver, containerd and
// runc. The CDI hooks (create-symlinks, update-ldcache, ...) land with the
// GPU issue; the package is empty until then.
package hooks
