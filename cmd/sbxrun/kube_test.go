package main

import (
	"slices"
	"testing"
)

func TestSplitKubeWords(t *testing.T) {
	tests := []struct {
		name  string
		words string
		gen   map[string]string
		run   string
	}{
		{name: "issue example", words: "model-dev --gpus 2 --memory 32g -- ollama serve", run: "model-dev --gpus 2 --memory 32g -- ollama serve"},
		{name: "own flags anywhere before the command", words: "--kind job base --name train -o out.yaml --namespace ml -e A=1 --service -- sh --kind x",
			gen: map[string]string{"kind": "job", "name": "train", "output": "out.yaml", "namespace": "ml", "service": "true"},
			run: "base -e A=1 -- sh --kind x"},
		{name: "run flags stay", words: "--pod-security=baseline -p 8000 --gpu-api dra --volumes emptydir --pin base",
			gen: map[string]string{"pod-security": "baseline", "gpu-api": "dra", "volumes": "emptydir", "pin": "true"},
			run: "-p 8000 base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := splitOwnWords(kubeGenerateFlags, shellWords(tt.words))
			if err != nil {
				t.Fatal(err)
			}
			if want := shellWords(tt.run); !slices.Equal(w.run, want) {
				t.Errorf("run words %q, want %q", w.run, want)
			}
			if len(w.gen) != len(tt.gen) {
				t.Errorf("own flags %q, want %q", w.gen, tt.gen)
			}
			for k, v := range tt.gen {
				if w.value(k) != v {
					t.Errorf("--%s = %q, want %q", k, w.value(k), v)
				}
			}
		})
	}
}
