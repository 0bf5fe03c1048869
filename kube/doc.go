// Package kube turns sandboxes into Kubernetes objects, and manifests into
// sandboxes.
//
//	runtime.Resolve (profiles, layers, flags: run's own validate step,
//	    nothing created; the image's config and digest when containerd
//	    has the image)
//	-> Generate: Pod | Job | Deployment (+ Secret, PersistentVolumeClaims,
//	   ResourceClaimTemplate, Service), typed k8s.io/api objects, hardened
//	   to the Pod Security Standards' restricted level by default
//	-> Level: the least Pod Security level that admits the Pod, as the
//	   pod-security-admission policy package evaluates it
//	-> Write: multi-document YAML (sigs.k8s.io/yaml)
//
// play: Load (strict k8s.io/api decoding; the trust rule of project files
// for an untrusted manifest) -> Plan: one runtime.RunOptions per container
// -> Play: runtime.Run, the lifecycle of `sbxrun run`, init containers
// first and to completion, a Pod's containers in the first one's network
// namespace (--net container:NAME), labelled with the file;
// down: the sandboxes with that label -> runtime.Remove.
//
// Everything a sandbox has that Kubernetes cannot express is one warning
// line, never dropped silently, and each mount is one line saying what it
// became. Only runtime dials containerd; nothing here imports the CLI library.
package kube
