# tests/preload.mk: tests that run real programs under the built libfastmem.so.  The
# programs in tests/progs are not linked with libfastmem: they get it by LD_PRELOAD.
check_PROGRAMS += \
	tests/progs/semantics \
	tests/progs/fill \
	tests/progs/threads \
	tests/progs/foreign \
	tests/progs/early_main \
	tests/progs/linked \
	tests/progs/shm_example \
	tests/progs/release \
	tests/progs/populate \
	tests/progs/qmbugs
check_LTLIBRARIES += tests/progs/libearly.la

# These programs test malloc itself: the compiler must not treat it as a builtin it
# may elide or reason about (clang assumes malloc leaves errno alone, and deletes a
# malloc/free pair whose memory is never read).
FM_PROG_CFLAGS = $(AM_CFLAGS) -fno-builtin
tests_progs_semantics_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_fill_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_foreign_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_early_main_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_libearly_la_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_semantics_LDFLAGS = -no-install
tests_progs_fill_LDFLAGS = -no-install
tests_progs_threads_LDFLAGS = -no-install -pthread
tests_progs_threads_CFLAGS = $(FM_PROG_CFLAGS) -pthread
tests_progs_foreign_LDFLAGS = -no-install
tests_progs_early_main_LDFLAGS = -no-install
tests_progs_early_main_LDADD = tests/progs/libearly.la
# Linked with the library instead of preloaded.
tests_progs_linked_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_linked_LDFLAGS = -no-install
tests_progs_linked_LDADD = src/libfastmem.la
tests_progs_release_SOURCES = tests/progs/release.c tests/progs/rss.h
tests_progs_release_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_qmbugs_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_qmbugs_LDFLAGS = -no-install
tests_progs_release_LDFLAGS = -no-install
tests_progs_populate_SOURCES = tests/progs/populate.c tests/progs/rss.h
tests_progs_populate_CFLAGS = $(FM_PROG_CFLAGS)
tests_progs_populate_LDFLAGS = -no-install
tests_progs_shm_example_LDFLAGS = -no-install
tests_progs_shm_example_LDADD = src/libfastmem.la
# A shared library (libtool makes check libraries static without an -rpath).
tests_progs_libearly_la_SOURCES = tests/progs/early.c
tests_progs_libearly_la_LDFLAGS = -avoid-version -rpath /nowhere

PRELOAD_TESTS = \
	tests/exports.sh \
	tests/preload_config.sh \
	tests/preload_semantics.sh \
	tests/preload_foreign.sh \
	tests/preload_early.sh \
	tests/preload_cap.sh \
	tests/preload_release.sh \
	tests/preload_populate.sh \
	tests/fastmem_cli.sh \
	tests/preload_qm.sh \
	tests/preload_threads.sh \
	tests/preload_programs.sh \
	tests/linked.sh \
	tests/shm_example.sh
TESTS += $(PRELOAD_TESTS)
EXTRA_DIST += $(PRELOAD_TESTS) tests/preload_lib.sh tests/exports.list
