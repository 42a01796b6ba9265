# Thin wrapper over CMake. The two commands a new user runs:
#   make demo   install what is missing, build, train a teacher and a student, print the results
#   make test   install what is missing (and the test peers: scripts/install-peers.sh), build with
#               ASan+UBSan, run the whole test suite (ctest)
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
BUILD   ?= build
TESTDIR ?= build-test

.PHONY: all deps build demo test bench install clean

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@sh scripts/demo.sh $(BUILD)/distill

test: deps
	@sh scripts/install-peers.sh
	@cmake -S . -B $(TESTDIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKD_SANITIZE=ON >/dev/null
	@cmake --build $(TESTDIR) -j $(JOBS)
	@cd $(TESTDIR) && ctest --output-on-failure --timeout 600

bench: build
	@sh bench/run.sh $(BUILD)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(TESTDIR)
