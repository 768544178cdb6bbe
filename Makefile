# headcount: the two front doors are `make demo` and `make test`; each installs what it needs.
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
RELEASE_BIN = .build/release/headcount
# The Debian package's own build: the Swift runtime linked in (no toolchain on the van), bind-now.
DEB_SCRATCH = .build-deb
DEB_BUILD_FLAGS = -c release --product headcount --static-swift-stdlib -Xlinker -z -Xlinker now

.PHONY: all setup build release test unit-test lint cli-test demo bench deb deb-test soak fuzz sanitize clean

all: build

# Installs what building and testing need on a fresh Debian 12 machine (as root).
setup:
	@scripts/setup

build: setup
	$(SWIFT) build -Xswiftc -warnings-as-errors

release: setup
	$(SWIFT) build -c release --product headcount

# Every test: warnings are errors, the formatter's lint, the Swift test suites, and the command
# line, the daemon (scripts/daemon-e2e), diagnose (scripts/diagnose-test), and watch and record
# (scripts/live-tools-e2e) end to end against the release binary; then the Debian package
# (scripts/deb-test); last, the Swift test suites again under ASan and TSan (make sanitize).
test: setup lint
	$(SWIFT) build --build-tests -Xswiftc -warnings-as-errors
	$(SWIFT) test --skip-build
	scripts/fuzz --smoke
	scripts/openapi-check
	$(MAKE) --no-print-directory cli-test
	HEADCOUNT_BIN=$(CURDIR)/$(RELEASE_BIN) scripts/check-unit
	scripts/daemon-e2e $(RELEASE_BIN)
	scripts/soak $(RELEASE_BIN) --trips 30 --fault-gap 3 --quiet
	scripts/diagnose-test $(RELEASE_BIN)
	scripts/live-tools-e2e $(RELEASE_BIN)
	$(MAKE) --no-print-directory deb-test
	$(MAKE) --no-print-directory sanitize

lint: setup
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

cli-test: release
	scripts/cli-test $(RELEASE_BIN)

# The Swift test suites under AddressSanitizer (LeakSanitizer included) and ThreadSanitizer, each
# built in a scratch path of its own (.build-asan, .build-tsan). Tests/Sanitizers/: lsan.supp (two
# leaks inside XCTest and Foundation, explained there), and mutex-tsan.c, preloaded into the TSan
# run, which shows TSan the contended path of Synchronization's Mutex (without it, every contended
# lock reads as a race). The ASan build links with lld: gold warns once for each hidden symbol of
# the ASan runtime. About 13 minutes from clean on 2 cores, 4 to 5 when nothing changed. The
# last step of `make test`.
SANITIZE_CLANG ?= $(dir $(realpath $(SWIFT)))clang
sanitize: setup
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan -Xswiftc -warnings-as-errors \
	    -Xswiftc -use-ld=lld
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Sanitizers/lsan.supp \
	    $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan -Xswiftc -warnings-as-errors
	$(SANITIZE_CLANG) -O2 -Wall -Wextra -Werror -shared -fPIC Tests/Sanitizers/mutex-tsan.c \
	    -o .build-tsan/libmutex-tsan.so
	LD_PRELOAD=$(CURDIR)/.build-tsan/libmutex-tsan.so \
	    $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

# The Debian package, .build-deb/headcount_VERSION_ARCH.deb for this machine's architecture: the
# binary, unit, udev rule, sysusers entry, example config (a conffile), profiles, man page and shell
# completions. The man page comes from swift-argument-parser's generate-manual, run on the packaged
# binary, so it always lists the commands that binary has. It is the tool behind the package's
# `swift package plugin generate-manual`, built on its own: the plugin works offline but first
# builds every product (the benchmarks too) in a configuration of its own, minutes more per run.
deb: setup
	$(SWIFT) build $(DEB_BUILD_FLAGS) --scratch-path $(DEB_SCRATCH)
	$(SWIFT) build --package-path $(DEB_SCRATCH)/checkouts/swift-argument-parser \
	    --scratch-path $(DEB_SCRATCH)/generate-manual --product generate-manual
	scripts/build-deb $(DEB_SCRATCH)/release/headcount $(DEB_SCRATCH)/generate-manual/debug/generate-manual $(DEB_SCRATCH)

# lintian, the package's contents, and (as root) dpkg -i, the installed commands, remove and purge.
deb-test: deb
	scripts/deb-test $(DEB_SCRATCH)/headcount_*.deb

# The live van: `headcount run` on the simulator with the reference center and the Modbus cabin
# thermometer, playing the bundled "child left asleep" trip at 40x, as one timeline in trip time.
demo: release
	@scripts/demo $(RELEASE_BIN)

# Measured figures: the engine and `headcount replay`, Modbus against the pymodbus peer, the
# outbox's durable enqueues, push latency against a curl one-shot over mutual TLS, and the live
# path (edge -> buzzer, -> outbox), startup to READY=1 and the idle daemon's RSS and CPU.
BENCHES = headcount-bench headcount-modbus-bench headcount-outbox-bench headcount-push-bench headcount-live-bench
bench: release
	for product in $(BENCHES); do $(SWIFT) build -c release --product $$product || exit 1; done
	.build/release/headcount-bench --headcount $(RELEASE_BIN)
	@echo
	.build/release/headcount-modbus-bench
	@echo
	dir=$$(mktemp -d /var/tmp/headcount-bench.XXXXXX) && .build/release/headcount-outbox-bench --dir "$$dir"; \
	    status=$$?; rm -rf "$$dir"; exit $$status
	@echo
	.build/release/headcount-push-bench
	@echo
	.build/release/headcount-live-bench --headcount $(RELEASE_BIN)

# The soak run: ONE daemon through 1,000 simulated trips at 500x (about 11 minutes) with receiver
# outages and Modbus faults injected at random; per trip the alerts replay gives, each delivered
# once, every child-left trip alarmed, RSS flat (scripts/soak says how). `make test` runs 30 trips
# (25 to 40 s).
soak: release
	scripts/soak $(RELEASE_BIN) --trips 1000

# libFuzzer over traces, configs, profiles, device models and Modbus answers (scripts/fuzz), each
# target FUZZ_SECONDS (about 6 minutes in all with the build); any crash, hang or leak fails it
# and names the reproducer. `make test` runs `scripts/fuzz --smoke`: the corpora and 10 s each.
FUZZ_SECONDS ?= 60
fuzz: setup
	scripts/fuzz --seconds $(FUZZ_SECONDS)

clean:
	rm -rf .build $(DEB_SCRATCH) .build-fuzz .build-asan .build-tsan
