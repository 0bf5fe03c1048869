// Package libexec finds sbxrun's helper programs (sbxrun-compose-load,
// sbxrun-kube): programs of their own so that what they link does not
// cost every sbxrun command its size and start-up.
package libexec
