# An HTTP server in C, in eight steps. `make help` lists what you can do.

STEPS := 01 02 03 04 05 06 07 08 09 10 11
STEP_BINARIES := $(addprefix step,$(STEPS))

CFLAGS ?= -O2 -g
# Not optional: every step must build clean under C17 and these warnings.
STRICT_CFLAGS := -std=c17 -Wall -Wextra -Wpedantic -Werror
# make SANITIZE=1 ...: AddressSanitizer and UndefinedBehaviorSanitizer.
ifneq ($(SANITIZE),)
SANITIZER_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
BUILD_CFLAGS = $(STRICT_CFLAGS) $(CFLAGS) $(SANITIZER_FLAGS)

PORT ?= 8080
STEP ?=
SERVER ?=
PART ?=

# Rebuild the steps when the compiler or its flags change, such as with
# SANITIZE=1, not only when a server.c does.
FLAGS_STAMP := build/compiler-flags
$(shell mkdir -p build && echo '$(CC) $(BUILD_CFLAGS) $(LDFLAGS)' | cmp -s - $(FLAGS_STAMP) || \
	echo '$(CC) $(BUILD_CFLAGS) $(LDFLAGS)' > $(FLAGS_STAMP))

.PHONY: all help run test test-all check clean book transcripts $(addprefix step-,$(STEPS))

all: $(STEP_BINARIES) ## build every step's server: ./step01, ./step02 and on

# The source of step NN: $(call step_source,04) is steps/04-accept/server.c.
step_source = $(wildcard steps/$(1)-*/server.c)

define STEP_RULES
step$(1): $(call step_source,$(1)) $(FLAGS_STAMP)
	$$(CC) $$(BUILD_CFLAGS) $$(LDFLAGS) -o $$@ $$<
step-$(1): step$(1)
endef
$(foreach n,$(STEPS),$(eval $(call STEP_RULES,$(n))))

help: ## list the targets
	@echo 'make step-04     build one step, then run it: ./step04 [PORT [ADDRESS]]'
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{ printf "make %-13s %s\n", $$1, $$2 }'
	@echo 'Variables: CC, CFLAGS, SANITIZE=1, PORT (make run), STEP, SERVER and PART (make check).'

# The newest step: the last of STEPS.
NEWEST := $(lastword $(STEPS))
run: step$(NEWEST) ## build the newest step and start it on PORT (default 8080)
	./step$(NEWEST) $(PORT)

test: all answers ## the newest step against every test, each older step against its own, the ladder, the answers (1 min)
	@tests/run-all

test-all: all answers ## make test, and every step against every earlier step's tests too (CI; 2 min)
	@tests/run-all --all

check: ## check a server of yours: make check STEP=04 SERVER=path/to/server [PART=2]
	@test -n "$(STEP)" || { echo 'usage: make check STEP=04 [SERVER=path/to/server] [PART=N or NAME, for steps 05, 06, 09 and 10]' >&2; exit 2; }
	@tests/check $(STEP) $(or $(SERVER),./step$(shell printf '%02d' "$$(expr '$(STEP)' + 0 2>/dev/null)" 2>/dev/null)) $(if $(PART),--part '$(PART)')

# The benchmark (tests/bench/, book/bench/README.md): every step against
# nginx and the floor, a minimal epoll server (tests/bench/floor.c).
BENCH_TOOLS := build/floor build/many-clients
.PHONY: bench bench-rps bench-syscalls bench-connections bench-files

build/%: tests/bench/%.c $(FLAGS_STAMP)
	$(CC) $(BUILD_CFLAGS) $(LDFLAGS) -o $@ $<

# One after the other, even under make -j: each needs the machine alone.
bench: all $(BENCH_TOOLS) ## bench-rps, bench-syscalls and bench-connections, one after the other, into book/bench/ (5 min)
	@tests/bench/run $(or $(SECONDS),2) $(or $(ROUNDS),3)
	@tests/bench/syscalls
	@tests/bench/connections

bench-rps: all $(BENCH_TOOLS) ## requests per second, wrk: make bench-rps SECONDS=2 ROUNDS=3
	@tests/bench/run $(or $(SECONDS),2) $(or $(ROUNDS),3)

bench-syscalls: all $(BENCH_TOOLS) ## system calls per request of each server, strace -c
	@tests/bench/syscalls

bench-connections: all $(BENCH_TOOLS) ## memory per idle connection, 10000 held open
	@tests/bench/connections

bench-files: step10 ## a 256 MiB file, step 10 against nginx with sendfile, 15 rounds
	@tests/bench/files

# build/valgrind/ is tests/install-valgrind's download, not make's: kept.
clean: ## remove what make built
	rm -rf $(STEP_BINARIES) $(filter-out build/valgrind,$(wildcard build/*))

book: ## build the book into build/book/ (HTML, EPUB, PDF)
	@book/build

transcripts: all ## play the book's terminal scenes again, into book/transcripts/ (10 s)
	@book/transcript --all book/transcripts

# Workshop mode and the exercises' answers. Each answer is stored once, as a
# patch against its step: book/answers/NAME.diff, NAME starting with the
# step's number. make answers applies it exactly (tests/apply-patch, which
# prints how to repair a patch that a change to its step broke) into
# build/answers/NAME.c and builds build/answers/NAME. make workshop STEP=01
# starts from step 01 and tests/workshop/skeleton.diff the same way.
ANSWERS := $(patsubst book/answers/%.diff,%,$(wildcard book/answers/*.diff))
ANSWER_BINARIES := $(addprefix build/answers/,$(ANSWERS))
.PHONY: workshop answers test-answers

workshop: ## write a stage yourself: make workshop STEP=04 (again to rebuild)
	@test -n "$(STEP)" || { echo 'usage: make workshop STEP=04' >&2; exit 2; }
	@CC='$(CC)' WORKSHOP_CFLAGS='$(BUILD_CFLAGS) $(LDFLAGS)' tests/workshop/start $(STEP)

answers: $(ANSWER_BINARIES) ## build the exercises' answers into build/answers/

define ANSWER_RULES
build/answers/$(1).c: book/answers/$(1).diff $(call step_source,$(firstword $(subst -, ,$(1))))
	@mkdir -p $$(@D)
	tests/apply-patch $$(word 2,$$^) $$< $$@
build/answers/$(1): build/answers/$(1).c $(FLAGS_STAMP)
	$$(CC) $$(BUILD_CFLAGS) $$(LDFLAGS) -o $$@ $$<
endef
$(foreach a,$(ANSWERS),$(eval $(call ANSWER_RULES,$(a))))

test-answers: all answers ## test the exercise answers and make workshop
	@tests/answers

# The book's experiments ("remove this call and see"), stored the same way:
# book/experiments/NAME.diff against step NN (NAME starts with NN), made
# into build/experiments/NAME.c and built as the steps are.
EXPERIMENTS := $(patsubst book/experiments/%.diff,%,$(wildcard book/experiments/*.diff))
.PHONY: experiments

experiments: $(addprefix build/experiments/,$(EXPERIMENTS)) ## build the book's experiments into build/experiments/

define EXPERIMENT_RULES
build/experiments/$(1).c: book/experiments/$(1).diff $(call step_source,$(firstword $(subst -, ,$(1))))
	@mkdir -p $$(@D)
	tests/apply-patch $$(word 2,$$^) $$< $$@
build/experiments/$(1): build/experiments/$(1).c $(FLAGS_STAMP)
	$$(CC) $$(BUILD_CFLAGS) $$(LDFLAGS) -o $$@ $$<
endef
$(foreach e,$(EXPERIMENTS),$(eval $(call EXPERIMENT_RULES,$(e))))

# Proving the servers hold: fuzzing, sanitizers, valgrind, fault and load
# tests, static checks. book/d-tested.md says what each found.
.PHONY: fuzz memcheck faults lint
FUZZ_STEPS := 05 06 07 08 09 10 11
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
# The fuzz target includes a whole server.c: its main, renamed step_main,
# is never called, and ends in a loop that does not return.
FUZZ_CFLAGS := -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-function -Wno-return-type
FUZZERS := $(addprefix build/fuzz/parse,$(FUZZ_STEPS))

define FUZZ_RULES
build/fuzz/parse$(1): tests/fuzz/parse.c $(call step_source,$(1))
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) $(if $(filter 06 07 08 09,$(1)),-DSTEP_RESPONDS) \
		$(if $(filter 07 08 09 10 11,$(1)),-DSTEP_KEEPS_ALIVE) $(if $(filter 09,$(1)),-DSTEP_FINDS_REQUESTS) \
		$(if $(filter 10 11,$(1)),-DSTEP_SERVES_FILES) \
		-DSTEP_SOURCE='"$$(abspath $(call step_source,$(1)))"' -o $$@ $$<
endef
$(foreach n,$(FUZZ_STEPS),$(eval $(call FUZZ_RULES,$(n))))

# With SANITIZE=1, a sanitizer report ends the server at once (its tests
# then fail), and leaks are reported when a server exits on its own.
ifneq ($(SANITIZE),)
export ASAN_OPTIONS ?= detect_leaks=1:strict_string_checks=1:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
endif

fuzz: $(FUZZERS) ## fuzz the parser of steps 05 to 11, and the paths of steps 10 and 11, FUZZ_SECONDS (60) each, one per processor at a time
	@tests/fuzz/run $(FUZZ_SECONDS) $(FUZZERS)

faults: step05 step06 step07 step08 step09 step10 step11 ## slow, silent, rude and malformed clients, and load (60 s)
	@tests/faults

memcheck: all ## the tests and make faults with every server under valgrind
	@tests/memcheck

lint: ## static checks: cppcheck, clang-tidy, clang-format, shellcheck
	@tests/lint/run
