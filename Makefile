# An HTTP server in C, step by step. `make help` lists what you can do.

# The steps, and what each can do, are listed once: steps/list, read
# through tests/steps. $(call steps_that,files) is "10 11".
STEPS := $(shell tests/steps)
steps_that = $(shell tests/steps $(1))
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
# SANITIZE=1, not only when a step's files do.
FLAGS_STAMP := build/compiler-flags
$(shell mkdir -p build && echo '$(CC) $(BUILD_CFLAGS) $(LDFLAGS)' | cmp -s - $(FLAGS_STAMP) || \
	echo '$(CC) $(BUILD_CFLAGS) $(LDFLAGS)' > $(FLAGS_STAMP))

.PHONY: all help run test test-all check clean book transcripts $(addprefix step-,$(STEPS))

all: $(STEP_BINARIES) ## build every step's server: ./step01, ./step02 and on

# A step is a folder: $(call step_dir,05) is steps/05-parse, and its
# files, $(call step_files,05), are its .c and .h files: server.c, and
# from step 05 on the parser, http.c and http.h.
step_dir = $(patsubst %/,%,$(dir $(wildcard steps/$(1)-*/server.c)))
step_files = $(wildcard $(call step_dir,$(1))/*.[ch])

# Every .c file of a folder, compiled into one program.
define STEP_RULES
step$(1): $(call step_files,$(1)) $(FLAGS_STAMP)
	$$(strip $$(CC) $$(BUILD_CFLAGS) $$(LDFLAGS)) -o $$@ $$(filter %.c,$$^)
step-$(1): step$(1)
endef
$(foreach n,$(STEPS),$(eval $(call STEP_RULES,$(n))))

help: ## list the targets
	@echo 'make step-04     build one step, then run it: ./step04 [PORT [ADDRESS]]'
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{ printf "make %-13s %s\n", $$1, $$2 }'
	@echo 'Variables: CC, CFLAGS, SANITIZE=1, PORT (make run); for make check: STEP, SERVER, PART, ALL=1 (go on after a failing file), KEEP_GOING=1 (run the tests a hang would skip), WAIT_SECONDS (5), BATS_FLAGS (--filter NAME).'

# The newest step: the last of STEPS.
NEWEST := $(lastword $(STEPS))
run: step$(NEWEST) ## build the newest step and start it on PORT (default 8080)
	./step$(NEWEST) $(PORT)

test: all answers ## the newest step against every test, each older step against its own, the ladder, the answers (1 min)
	@tests/run-all

test-all: all answers ## make test, and every step against every earlier step's tests too (CI; 2 min)
	@tests/run-all --all

check: ## check a server of yours: make check STEP=04 SERVER=path/to/server [PART=2] [ALL=1: go on after a failing file]
	@test -n "$(STEP)" || { echo 'usage: make check STEP=04 [SERVER=path/to/server] [PART=N or NAME, for the stages written in parts]' >&2; exit 2; }
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

# The first step that serves files is the one measured.
FILES_STEP := $(shell tests/steps --first files)
bench-files: step$(FILES_STEP) ## a 256 MiB file, the first step with files against nginx with sendfile, 15 rounds
	@tests/bench/files

# build/valgrind/ is tests/install-valgrind's download, not make's: kept.
clean: ## remove what make built
	rm -rf $(STEP_BINARIES) $(filter-out build/valgrind,$(wildcard build/*))

book: ## build the book into build/book/ (HTML, EPUB, PDF)
	@book/build

transcripts: all ## play the book's terminal scenes again, into book/transcripts/ (10 s)
	@book/transcript --all book/transcripts

# Workshop mode and the exercises' answers. Each answer is stored once, as a
# patch against its step's folder: book/answers/NAME.diff, NAME starting
# with the step's number. make answers applies it exactly (tests/apply-patch,
# which prints how to repair a patch that a change to its step broke) to a
# copy of the folder, build/answers/src/NAME/, and builds build/answers/NAME
# from its .c files. make workshop STEP=01 starts from step 01 and
# tests/workshop/skeleton.diff the same way.
ANSWERS := $(patsubst book/answers/%.diff,%,$(wildcard book/answers/*.diff))
ANSWER_BINARIES := $(addprefix build/answers/,$(ANSWERS))
.PHONY: workshop answers test-answers

workshop: ## write a stage yourself: make workshop STEP=04 (again to rebuild)
	@test -n "$(STEP)" || { echo 'usage: make workshop STEP=04' >&2; exit 2; }
	@CC='$(CC)' WORKSHOP_CFLAGS='$(BUILD_CFLAGS) $(LDFLAGS)' tests/workshop/start $(STEP)

answers: $(ANSWER_BINARIES) ## build the exercises' answers into build/answers/

# A patched folder (answers, experiments): $(call patched_rules,KIND,NAME)
# makes build/KIND/src/NAME/ from book/KIND/NAME.diff and the folder of
# the step NAME starts with, then build/KIND/NAME from its .c files.
# server.c stands for the folder: every step has one, and apply-patch
# writes every file of the folder anew.
patched_step = $(firstword $(subst -, ,$(1)))
define PATCHED_RULES
build/$(1)/src/$(2)/server.c: book/$(1)/$(2).diff $(call step_files,$(call patched_step,$(2)))
	tests/apply-patch $(call step_dir,$(call patched_step,$(2))) $$< $$(@D)
build/$(1)/$(2): build/$(1)/src/$(2)/server.c $(FLAGS_STAMP)
	$$(CC) $$(BUILD_CFLAGS) $$(LDFLAGS) -o $$@ $$(<D)/*.c
endef
$(foreach a,$(ANSWERS),$(eval $(call PATCHED_RULES,answers,$(a))))

test-answers: all answers ## test the exercise answers and make workshop
	@tests/answers

# The book's experiments ("remove this call and see"), stored the same way:
# book/experiments/NAME.diff against step NN (NAME starts with NN), made
# into build/experiments/src/NAME/ and built as build/experiments/NAME.
EXPERIMENTS := $(patsubst book/experiments/%.diff,%,$(wildcard book/experiments/*.diff))
.PHONY: experiments

experiments: $(addprefix build/experiments/,$(EXPERIMENTS)) ## build the book's experiments into build/experiments/

$(foreach e,$(EXPERIMENTS),$(eval $(call PATCHED_RULES,experiments,$(e))))

# Proving the servers hold: fuzzing, sanitizers, valgrind, fault and load
# tests, static checks. book/d-tested.md says what each found.
.PHONY: fuzz memcheck faults lint
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -Wall -Wextra -Werror

# The parser's target links a step's http.c: one target for each version
# of the parser, the first step that has it naming it (tests/fuzz/parsers
# lists them).
PARSER_STEPS := $(shell tests/fuzz/parsers)
define PARSER_FUZZ_RULES
build/fuzz/parse$(1): tests/fuzz/parse.c $(call step_files,$(1))
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -I$(call step_dir,$(1)) -o $$@ $$< $(call step_dir,$(1))/http.c
endef
$(foreach n,$(PARSER_STEPS),$(eval $(call PARSER_FUZZ_RULES,$(n))))

# The responses' target includes a whole server.c, so that it can call its
# static functions: its main, renamed step_main, is never called (and ends
# in a loop that does not return). What the step can do, in steps/list,
# says what to fuzz: -DSTEP_KEEPS_ALIVE, -DSTEP_LOOP, -DSTEP_FILES.
RESPONSE_STEPS := $(call steps_that,responds)
step_defines = $(foreach ability,keeps-alive loop files,\
	$(if $(shell tests/steps --can $(1) $(ability) && echo yes),\
	-DSTEP_$(shell echo $(ability) | tr a-z- A-Z_)))
define RESPONSE_FUZZ_RULES
build/fuzz/respond$(1): tests/fuzz/respond.c $(call step_files,$(1))
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -Wno-unused-function -Wno-return-type $(call step_defines,$(1)) \
		-I$(call step_dir,$(1)) -DSTEP_SOURCE='"$$(abspath $(call step_dir,$(1))/server.c)"' \
		-o $$@ $$< $(call step_dir,$(1))/http.c
endef
$(foreach n,$(RESPONSE_STEPS),$(eval $(call RESPONSE_FUZZ_RULES,$(n))))
FUZZERS := $(addprefix build/fuzz/parse,$(PARSER_STEPS)) $(addprefix build/fuzz/respond,$(RESPONSE_STEPS))

# With SANITIZE=1, a sanitizer report ends the server at once (its tests
# then fail), and leaks are reported when a server exits on its own.
ifneq ($(SANITIZE),)
export ASAN_OPTIONS ?= detect_leaks=1:strict_string_checks=1:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
endif

fuzz: $(FUZZERS) ## fuzz each version of the parser, and every step's responses, FUZZ_SECONDS (60) each, one per processor at a time
	@tests/fuzz/run $(FUZZ_SECONDS) $(FUZZERS)

faults: $(addprefix step,$(call steps_that,parses)) ## slow, silent, rude and malformed clients, and load (60 s)
	@tests/faults

memcheck: all ## the tests and make faults with every server under valgrind
	@tests/memcheck

lint: ## static checks: cppcheck, clang-tidy, clang-format, shellcheck
	@tests/lint/run
