# make run    - install what is missing, build (Release), run every built-in server
# make check  - the fast tier: plain build, unit and protocol tests (no apt, no sanitizers)
# make test   - install what is missing, build with ASan+UBSan and TSan, run every test
# make bench  - Release build, then the benchmarks (BENCH=core|net|grey|bbs|mcast|all)
# make container-test - build the image with podman and check it as users run it
#               (root, ~15 minutes, not part of `make test`; docs/DEPLOY.md)
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BENCH ?= core
DATA_DIR ?= ./var
CONSOLE_PORT ?= 8080
CMAKE_GEN := -G Ninja
RELEASE := build
ASAN := build-asan
TSAN := build-tsan
CHECK ?= build-check

.PHONY: all deps build run check test test-asan test-tsan test-fuzz bench-smoke bench container-test clean

all: build

deps:
	@scripts/install-deps

build: deps
	cmake -S . -B $(RELEASE) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DKAMAELIA_BUILD_TESTS=OFF
	cmake --build $(RELEASE) -j $(JOBS)

run: build
	mkdir -p $(DATA_DIR)
	@echo "make run: the live console will be at http://127.0.0.1:$(CONSOLE_PORT)/"
	./$(RELEASE)/bin/kamaelia all --data-dir $(DATA_DIR) --console $(CONSOLE_PORT) --console-bind 127.0.0.1

# The loop a developer runs between edits: a Release build with the tests (no
# benchmarks, no examples, no sanitizers, no apt), then the unit and protocol
# tests (tests/*.cpp, one process) and the daemon's --help as a smoke test.
# The integration and packaging tests (real daemons, real clients, Docker)
# belong to `make test`.
check:
	cmake -S . -B $(CHECK) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DKAMAELIA_BUILD_BENCH=OFF -DKAMAELIA_BUILD_EXAMPLES=OFF
	cmake --build $(CHECK) -j $(JOBS) --target kamaelia_tests kamaelia
	./$(CHECK)/bin/kamaelia --help >/dev/null
	./$(CHECK)/bin/kamaelia_tests --order decl

# The ASan+UBSan run comes last so that CTest's summary closes the output.
test: deps bench-smoke test-tsan test-fuzz test-asan

test-asan: deps
	cmake -S . -B $(ASAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAMAELIA_SANITIZE=address,undefined -DKAMAELIA_BUILD_BENCH=OFF
	cmake --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer covers the threaded parts (tests tagged [threads]), the
# tests that use up every descriptor ([descriptors]), which UBSan's vptr check
# cannot run, and the socket adapter's write coalescing over real sockets
# ([csa]: its posted flushes and I/O handlers).
test-tsan: deps
	cmake -S . -B $(TSAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAMAELIA_SANITIZE=thread -DKAMAELIA_BUILD_BENCH=OFF -DKAMAELIA_BUILD_EXAMPLES=OFF
	cmake --build $(TSAN) -j $(JOBS) --target kamaelia_tests
	TSAN_OPTIONS=halt_on_error=1 ./$(TSAN)/bin/kamaelia_tests '[threads],[descriptors],[csa],[fastpath]'

# libFuzzer targets (tests/fuzz/fuzz_*.cpp), FUZZ_SECONDS each (default 10).
test-fuzz: deps
	scripts/fuzz

# The benchmarks build and run briefly (figures come from `make bench`).
bench-smoke: build
	if [ -x scripts/bench ]; then BENCH_QUICK=1 scripts/bench all; fi

bench: build
	scripts/bench $(BENCH)

# Installs podman, runc, mmdebstrap... itself (install-deps --container-test).
container-test:
	scripts/container-test

clean:
	rm -rf $(RELEASE) $(ASAN) $(TSAN) $(CHECK) build-fuzz
