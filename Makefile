# berth — build, install, test, bench.
# `make setup` on a fresh Debian/Ubuntu machine installs what berth needs, builds it,
# and runs a demo container with berth-runtime. `make test` runs every test.

PREFIX ?= /usr/local
CARGO ?= cargo
RELEASE := target/release
BINS := berth-runtime containerd-shim-berth-v2 berth
DEMO := $(CURDIR)/target/demo

# Debian packages: build deps, the busybox used for test rootfs, and the real peers the
# tests run against.
PACKAGES := pkg-config libseccomp-dev busybox-static runc crun jq iproute2 hyperfine \
	containerd docker.io docker-registry skopeo umoci podman

.PHONY: all build setup deps install demo test bench fmt lint clean

all: build

build:
	$(CARGO) build --release --workspace

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PACKAGES)

setup: deps build install demo

install: build
	install -m 0755 $(addprefix $(RELEASE)/,$(BINS)) $(PREFIX)/bin/

# A real container from a busybox rootfs: berth-runtime spec + run.
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)/rootfs/bin
	cp /bin/busybox $(DEMO)/rootfs/bin/busybox
	for a in $$(/bin/busybox --list); do ln -sf busybox $(DEMO)/rootfs/bin/$$a; done
	cd $(DEMO) && $(CURDIR)/$(RELEASE)/berth-runtime spec
	jq '.process.terminal=false | .process.args=["sh","-c","echo hello from $$(hostname), pid $$$$ in a berth container; id"]' \
		$(DEMO)/config.json > $(DEMO)/config.json.new && mv $(DEMO)/config.json.new $(DEMO)/config.json
	$(RELEASE)/berth-runtime --root $(DEMO)/state run --bundle $(DEMO) demo

test: build
	$(CARGO) test --release --workspace -- --test-threads=$${TEST_THREADS:-4}

bench: build
	$(RELEASE)/berth-bench --berth $(RELEASE)/berth-runtime

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
