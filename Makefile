# sbxrun: run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/sbxrun
# sbxrun-compose-load reads compose files for sbxrun (a program of its own:
# compose-go's loader would cost every sbxrun command ~10 ms to initialise).
LOADER := bin/sbxrun-compose-load
# sbxrun-kube does the kube commands (sbxrun built with -tags kube: the
# k8s.io/api types would cost every sbxrun command ~10 MB of binary).
KUBE := bin/sbxrun-kube
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# The private containerd of `make demo` lives outside the checkout: the demo
# mounts the checkout at /workspace, and sbxrun refuses to mount a directory
# holding the socket of the daemon it runs on.
DEMO_DIR ?= /var/lib/sbxrun-demo
# GPU spec generation (go-nvml) needs cgo; go-nvml's headers use deprecated
# declarations, which would warn on every build.
export CGO_ENABLED := 1
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: help build test soak unit integration fuzz bench bench-net bench-net-rootless bench-pull lint deps demo demo-stop image gpu-pack gpu-check gpu-check-rootless clean sandbox-images sandbox-images-test sandbox-pins

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-19s %s\n", $$1, $$2}'

deps: ## install containerd, runc and the other Debian packages the tests use (root)
	hack/deps.sh

build: ## build bin/sbxrun and its helpers, bin/sbxrun-compose-load and bin/sbxrun-kube
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sbxrun
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(LOADER) ./cmd/sbxrun-compose-load
	$(GO) build -tags kube -trimpath -ldflags '$(LDFLAGS)' -o $(KUBE) ./cmd/sbxrun

# Unit tests are every package but integration/ (which needs root and a
# containerd it starts itself), listed by go list so a new package is never
# left out.
test: deps ## unit and integration tests (installs what they need; run as root)
	$(GO) vet ./...
	$(GO) vet -tags kube ./cmd/sbxrun
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -tags kube ./cmd/sbxrun
	$(GO) test -count=1 -timeout 15m ./integration/...

soak: build image ## 1000 runs, 200 with mounts, 100 SIGKILLed, a containerd restart, a full state dir: all must come back to the start (root, ~10 min)
	hack/soak.sh

unit: ## unit tests only (no containerd needed)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -tags kube ./cmd/sbxrun

integration: ## integration tests against a private containerd the tests start (root)
	$(GO) test -count=1 -timeout 15m -v ./integration/...

fuzz: ## run each fuzz target for a short while
	@for t in FuzzParseSize FuzzParseVolume FuzzParseMountFlag FuzzParseEnvFile; do $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 15s ./oci/ || exit 1; done
	$(GO) test -run '^$$' -fuzz '^FuzzLoadProfiles$$' -fuzztime 15s ./runtime/profiles/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePublish$$' -fuzztime 15s ./network/

image: ## build the small local sandbox image (busybox) as bin/sandbox-base.tar
	@mkdir -p bin
	$(GO) run ./hack/mkimage -o bin/sandbox-base.tar -ref ghcr.io/sbxrun/base:latest

demo: deps build image ## start a private containerd under $(DEMO_DIR), load the local image, run a sandbox
	hack/containerd.sh start $(DEMO_DIR) >/dev/null
	SBXRUN_ADDRESS=$(DEMO_DIR)/containerd.sock $(BIN) load -i bin/sandbox-base.tar
	SBXRUN_ADDRESS=$(DEMO_DIR)/containerd.sock $(BIN) base --pull never -- sh -c 'echo "hello from $$(hostname) in $$(pwd) as $$(id -un)"; ls /workspace | head -5'
	@echo; echo "containerd keeps running: export SBXRUN_ADDRESS=$(DEMO_DIR)/containerd.sock  (stop it with: make demo-stop)"

demo-stop: ## stop the private containerd started by make demo
	hack/containerd.sh stop $(DEMO_DIR)

bench: build image ## sbxrun run --rm vs ctr run --rm on the same daemon and image (root)
	hack/bench.sh

bench-net: build image ## sbxrun run --rm on the default bridge vs --net host vs ctr run --rm --cni, same daemon (root)
	hack/bench-net.sh

bench-net-rootless: build image ## rootless sbxrun run --rm on its own network (pasta) vs --net host, as an unprivileged user (root)
	hack/bench-net-rootless.sh

bench-pull: build ## sbxrun pull vs ctr pull of a >=200 MB multi-layer image from a loopback registry (root)
	hack/bench-pull.sh

lint: ## gofmt, go vet, shellcheck and golangci-lint when present
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags kube ./cmd/sbxrun
	@if command -v shellcheck >/dev/null; then shellcheck hack/*.sh .ci/run; fi
	@if command -v golangci-lint >/dev/null; then golangci-lint run; fi
	$(GO) test -count=1 -run TestLayering ./cmd/...

gpu-pack: ## pack sbxrun, containerd, runc and a glibc test image for a GPU host with only a driver (dist/gpu-check.tar.xz)
	hack/gpu-pack.sh dist/gpu-check.tar.xz

gpu-check: gpu-pack ## on a GPU host (root): sbxrun gpu setup, model-dev -- nvidia-smi -L, a CUDA check, stale specs, timings
	hack/gpu-check.sh dist/gpu-check.tar.xz

gpu-check-rootless: gpu-pack ## on a GPU host (root): a throwaway user runs rootless sandboxes with GPUs
	hack/gpu-check-rootless.sh dist/gpu-check.tar.xz

SANDBOXES ?= base test
sandbox-images: deps build ## build the base and test sandboxes from Debian packages (no Docker) and load them into the demo containerd (SANDBOXES="base test model-dev")
	sandboxes/local/build.sh -o bin/sandboxes $(SANDBOXES)
	@if [ -z "$$SBXRUN_ADDRESS" ]; then hack/containerd.sh start $(DEMO_DIR) >/dev/null; fi
	@for s in $(SANDBOXES); do SBXRUN_ADDRESS=$${SBXRUN_ADDRESS:-$(DEMO_DIR)/containerd.sock} $(BIN) load -i bin/sandboxes/$$s.tar || exit 1; done

sandbox-images-test: sandbox-images ## run the promised tools of the locally built sandboxes through sbxrun
	SBXRUN=$(BIN) SBXRUN_ADDRESS=$${SBXRUN_ADDRESS:-$(DEMO_DIR)/containerd.sock} sandboxes/local/check.sh $(SANDBOXES)

sandbox-pins: ## copy sandboxes/versions.env into the Dockerfiles' ARG defaults
	sandboxes/pins.sh

# Installation layout: PREFIX=/usr/local by default, DESTDIR for staging
# (the package installs with PREFIX=/usr). Man pages, completions and the
# rootless user unit are generated from the binary (`sbxrun __generate`),
# never committed. The profile file lives in /etc whatever the prefix:
# sbxrun reads /etc/sbxrun/sbxrun.yaml.
.PHONY: install uninstall generate deb rpm package-test
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
GEN := bin/gen
INSTALLED := $(PREFIX)/bin/sbxrun \
	$(PREFIX)/libexec/sbxrun/sbxrun-compose-load \
	$(PREFIX)/libexec/sbxrun/sbxrun-kube \
	$(PREFIX)/share/bash-completion/completions/sbxrun \
	$(ZSHCOMPDIR)/_sbxrun \
	$(PREFIX)/share/fish/vendor_completions.d/sbxrun.fish \
	$(PREFIX)/lib/systemd/user/sbxrun-containerd.service \
	$(SYSCONFDIR)/sbxrun/sbxrun.yaml.example

generate: build ## man pages, completions and the rootless user unit into bin/gen
	rm -rf $(GEN)
	$(BIN) __generate --exe $(PREFIX)/bin/sbxrun $(GEN) >/dev/null
	gzip -9n $(GEN)/man/*.1

install: generate ## install sbxrun, man pages, completions, the rootless user unit and an example profile file (PREFIX=/usr/local, DESTDIR)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sbxrun
	install -D -m 0755 $(LOADER) $(DESTDIR)$(PREFIX)/libexec/sbxrun/sbxrun-compose-load
	install -D -m 0755 $(KUBE) $(DESTDIR)$(PREFIX)/libexec/sbxrun/sbxrun-kube
	install -D -m 0644 $(GEN)/completions/sbxrun $(DESTDIR)$(PREFIX)/share/bash-completion/completions/sbxrun
	install -D -m 0644 $(GEN)/completions/_sbxrun $(DESTDIR)$(ZSHCOMPDIR)/_sbxrun
	install -D -m 0644 $(GEN)/completions/sbxrun.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/sbxrun.fish
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(GEN)/man/*.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 $(GEN)/sbxrun-containerd.service $(DESTDIR)$(PREFIX)/lib/systemd/user/sbxrun-containerd.service
	install -D -m 0644 packaging/sbxrun.yaml.example $(DESTDIR)$(SYSCONFDIR)/sbxrun/sbxrun.yaml.example

uninstall: ## remove what make install installed (same PREFIX and DESTDIR); /etc/sbxrun/sbxrun.yaml stays
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/sbxrun.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/sbxrun-*.1.gz
	-rmdir $(DESTDIR)$(SYSCONFDIR)/sbxrun $(DESTDIR)$(PREFIX)/libexec/sbxrun 2>/dev/null

DIST ?= dist
deb: ## build dist/sbxrun_VERSION_amd64.deb (DIST=dir) with nfpm from packaging/nfpm.yaml and what make install installs
	rm -rf bin/pkgroot
	$(MAKE) install DESTDIR=$(CURDIR)/bin/pkgroot PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	$(GO) run ./hack/package -root bin/pkgroot -config packaging/nfpm.yaml -version '$(VERSION)' -o $(DIST)

rpm: ## build dist/sbxrun-VERSION.x86_64.rpm (DIST=dir) from the same declaration and files as make deb
	rm -rf bin/pkgroot
	$(MAKE) install DESTDIR=$(CURDIR)/bin/pkgroot PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/site-functions
	$(GO) run ./hack/package -format rpm -root bin/pkgroot -config packaging/nfpm.yaml -version '$(VERSION)' -o $(DIST)

package-test: deps ## build the deb, install it with its dependencies in a fresh mmdebstrap Debian 12 root and run sbxrun, doctor and man there (root, a few minutes)
	$(GO) test -tags packagetest -count=1 -timeout 20m -v ./packaging/

clean: ## remove build outputs
	rm -rf bin
