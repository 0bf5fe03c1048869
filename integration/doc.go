// Package integration holds sbxrun's end-to-end tests. They run the sbxrun
// binary against a real containerd and runc that the test harness starts
// itself in a temporary root with its own socket, on a busybox image built
// locally by hack/mkimage and imported with "sbxrun load". They need root and
// Debian's containerd, runc and busybox-static packages:
//
//	apt-get install -y containerd runc busybox-static
//	go test ./integration/
//
// A missing precondition fails every test with the fix; nothing is skipped.
package integration
