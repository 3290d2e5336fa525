# berth — build, install, test, bench.
# `make setup` on a fresh Debian/Ubuntu machine installs what berth needs, builds it,
# and runs a demo container with berth-runtime, then one with `berth run` from an image built
# here. `make test` runs every test.

PREFIX ?= /usr/local
CARGO ?= cargo
RELEASE := target/release
BINS := berth-runtime containerd-shim-berth-v2 berth berth-logger
DEMO := $(CURDIR)/target/demo

# Debian packages: build deps, the busybox used for test rootfs, and the real peers the
# tests run against.
PACKAGES := pkg-config libseccomp-dev busybox-static runc crun criu jq iproute2 hyperfine xz-utils openssl strace \
	containerd docker.io docker-registry skopeo umoci podman tini \
	docker-compose nftables protobuf-compiler catatonit iperf3 buildah \
	containernetworking-plugins iptables
# cgroup v2 tests boot a kernel under qemu (this host is hybrid v1/v2): from bookworm-backports,
# where this machine's qemu-utils comes from (tools/apt-backports adds it from the mirror the
# machine's apt sources already use).
BACKPORTS := qemu-system-x86 linux-image-amd64

.PHONY: all build setup deps install demo test bench fmt lint clean

all: build

build:
	$(CARGO) build --release --workspace

deps:
	sh tools/apt-backports
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PACKAGES)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports $(BACKPORTS)

setup: deps build install demo

install: build
	install -m 0755 $(addprefix $(RELEASE)/,$(BINS)) $(PREFIX)/bin/

# A real container from a busybox rootfs: berth-runtime spec + run; then the same rootfs as an
# image (a docker-archive made here, no registry needed), loaded and run by berth's daemon, which
# the CLI starts on first use.
DEMO_IMAGE := berth-demo/busybox:latest
demo: install
	rm -rf $(DEMO) && mkdir -p $(DEMO)/rootfs/bin $(DEMO)/rootfs/etc
	cp /bin/busybox $(DEMO)/rootfs/bin/busybox
	for a in $$(/bin/busybox --list); do [ $$a = busybox ] || ln -sf busybox $(DEMO)/rootfs/bin/$$a; done
	echo 'root:x:0:0:root:/root:/bin/sh' > $(DEMO)/rootfs/etc/passwd
	cd $(DEMO) && $(CURDIR)/$(RELEASE)/berth-runtime spec
	jq '.process.terminal=false | .process.args=["sh","-c","echo hello from $$(hostname), pid $$$$ in a berth container; id"]' \
		$(DEMO)/config.json > $(DEMO)/config.json.new && mv $(DEMO)/config.json.new $(DEMO)/config.json
	$(RELEASE)/berth-runtime --root $(DEMO)/state run --bundle $(DEMO) demo
	sh tools/busybox-image $(DEMO)/rootfs $(DEMO_IMAGE) $(DEMO)/busybox.tar
	$(PREFIX)/bin/berth load -i $(DEMO)/busybox.tar
	$(PREFIX)/bin/berth run --rm $(DEMO_IMAGE) sh -c 'echo hello from $$(hostname), a container of berth run; id'

test: build
	$(CARGO) test --release --workspace --no-fail-fast -- --test-threads=$${TEST_THREADS:-4}

bench: build
	$(RELEASE)/berth-bench --berth $(RELEASE)/berth-runtime --supervisor $(RELEASE)/berth $(BENCH_ARGS)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
