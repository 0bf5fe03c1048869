// Package kube turns sandboxes into Kubernetes objects.
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
// Everything a sandbox has that Kubernetes cannot express is one warning
// line, never dropped silently, and each mount is one line saying what it
// became. Nothing here dials containerd or imports the CLI library.
package kube
