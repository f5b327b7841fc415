# tests/: Check suites over the internals (they link libfastmem_core.la and keep
# glibc's malloc), and preload tests that run real programs under the built .so.

# The engines every engine-generic test runs over.  check_engine verifies that this
# list is exactly the engine registry, so a new engine cannot miss the preload tests.
FASTMEM_ENGINES = tlsf fm qm sys

AM_TESTS_ENVIRONMENT = \
	FASTMEM_LIB='$(abs_top_builddir)/src/.libs/libfastmem.so'; export FASTMEM_LIB; \
	FASTMEM_ENGINES='$(FASTMEM_ENGINES)'; export FASTMEM_ENGINES; \
	FASTMEM_PROGS='$(abs_top_builddir)/tests/progs'; export FASTMEM_PROGS; \
	FASTMEM_CLI='$(abs_top_builddir)/scripts/fastmem'; export FASTMEM_CLI; \
	FASTMEM_TESTS_SRCDIR='$(abs_top_srcdir)/tests'; export FASTMEM_TESTS_SRCDIR; \
	FASTMEM_SANITIZERS='$(FM_SANITIZERS_VALUE)'; export FASTMEM_SANITIZERS;

if FM_SANITIZERS
FM_SANITIZERS_VALUE = 1
else
FM_SANITIZERS_VALUE = 0
endif

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = bash

FM_CHECK_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
FM_CHECK_LDADD = src/libfastmem_core.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_engine tests/check_options tests/check_shm tests/check_tcache
TESTS += tests/check_engine tests/check_options tests/check_shm tests/check_tcache
noinst_HEADERS += tests/testutil.h

tests_check_engine_SOURCES = tests/check_engine.c
tests_check_engine_CFLAGS = $(FM_CHECK_CFLAGS)
tests_check_engine_LDADD = $(FM_CHECK_LDADD)
tests_check_engine_LDFLAGS = -no-install

tests_check_shm_SOURCES = tests/check_shm.c
tests_check_shm_CFLAGS = $(FM_CHECK_CFLAGS)
tests_check_shm_LDADD = $(FM_CHECK_LDADD)
tests_check_shm_LDFLAGS = -no-install

tests_check_tcache_SOURCES = tests/check_tcache.c
tests_check_tcache_CFLAGS = $(FM_CHECK_CFLAGS) -pthread
tests_check_tcache_LDADD = $(FM_CHECK_LDADD)
tests_check_tcache_LDFLAGS = -no-install -pthread

tests_check_options_SOURCES = tests/check_options.c
tests_check_options_CFLAGS = $(FM_CHECK_CFLAGS)
tests_check_options_LDADD = $(FM_CHECK_LDADD)
tests_check_options_LDFLAGS = -no-install

# Preload tests: real programs under LD_PRELOAD (tests/preload.mk).
include tests/preload.mk
