# bench/: allocation workloads and the runner that compares allocators on them
# (bench/README).  `make bench` builds the workloads program and runs every
# allocator; BENCH_ARGS passes options to bench/run.sh (BENCH_ARGS="-r 3 glibc fm").
# Run it in a plain build: a sanitizer build measures the sanitizer.
EXTRA_PROGRAMS = bench/workloads bench/locks
bench_workloads_SOURCES = bench/workloads.c bench/rng.h
bench_workloads_CFLAGS = $(FM_STD_CFLAGS) $(FM_WARN_CFLAGS) -O2 -pthread
bench_workloads_LDFLAGS = -pthread
# The shared heap's lock against the alternatives (bench/README).
bench_locks_SOURCES = bench/locks.c
bench_locks_CFLAGS = $(FM_STD_CFLAGS) $(FM_WARN_CFLAGS) -O2
bench_locks_LDADD = src/libfastmem_core.la
bench_locks_LDFLAGS = -no-install

EXTRA_DIST += bench/README bench/run.sh bench/allocators.sh bench/instructions.sh bench/tune.c bench/tune.sh
CLEANFILES += $(EXTRA_PROGRAMS)

bench: bench/workloads$(EXEEXT) bench/locks$(EXEEXT) src/libfastmem.la
	FASTMEM_LIB='$(abs_top_builddir)/src/.libs/libfastmem.so' \
	WORKLOADS_BIN='$(abs_top_builddir)/bench/workloads$(EXEEXT)' \
	bash '$(srcdir)/bench/run.sh' $(BENCH_ARGS)
	bench/locks$(EXEEXT)

# The same workloads' instruction counts under callgrind (bench/instructions.sh:
# deterministic, where the times above move with the machine's load).
bench-instructions: bench/workloads$(EXEEXT) src/libfastmem.la
	FASTMEM_LIB='$(abs_top_builddir)/src/.libs/libfastmem.so' \
	WORKLOADS_BIN='$(abs_top_builddir)/bench/workloads$(EXEEXT)' \
	bash '$(srcdir)/bench/instructions.sh' $(BENCH_INSTR_ARGS)

.PHONY: bench bench-instructions
