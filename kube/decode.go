package kube

import (
	"bytes"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Decode reads a multi-document manifest strictly into the k8s.io/api type
// of each document's kind: an unknown field, a wrong type or a kind this
// package does not write is an error naming the document.
func Decode(data []byte) ([]k8sruntime.Object, error) {
	objs, _, err := decode(data, false)
	return objs, err
}

// decode is Decode; with lenient, a document of another kind is returned
// as "Kind name" in other instead of failing.
func decode(data []byte, lenient bool) (out []k8sruntime.Object, other []string, err error) {
	data = bytes.TrimPrefix(data, []byte("---\n"))
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var obj k8sruntime.Object
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Pod":
			obj = &corev1.Pod{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "batch/v1/Job":
			obj = &batchv1.Job{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "resource.k8s.io/v1/ResourceClaimTemplate":
			obj = &resourcev1.ResourceClaimTemplate{}
		default:
			if lenient {
				other = append(other, tm.Kind+" "+tm.Metadata.Name)
				continue
			}
			return nil, nil, fmt.Errorf("document %d: kind %q of %q is not one sbxrun writes", i+1, tm.Kind, tm.APIVersion)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, nil, fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
		out = append(out, obj)
	}
	return out, other, nil
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// PodSpecOf is the Pod spec of a Pod, Job or Deployment, nil for other
// objects.
func PodSpecOf(obj k8sruntime.Object) *corev1.PodSpec {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.Spec
	case *batchv1.Job:
		return &o.Spec.Template.Spec
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec
	}
	return nil
}
