# src/: the allocator.  Everything but the exported names goes into a non-installed
# library that the unit tests link; that way the test programs keep glibc's malloc
# while they call our hidden internals.
noinst_LTLIBRARIES += %D%/libfastmem_core.la
%C%_libfastmem_core_la_SOURCES = \
	%D%/diag.c \
	%D%/engine.c \
	%D%/engine_fm.c \
	%D%/engine_qm.c \
	%D%/engine_tlsf.c \
	%D%/heap.c \
	%D%/heap_sys.c \
	%D%/init.c \
	%D%/libc.c \
	%D%/lock.c \
	%D%/options.c \
	%D%/os_linux.c \
	%D%/posix.c \
	%D%/shm.c \
	%D%/stats.c \
	%D%/symbol.c \
	%D%/tcache.c
%C%_libfastmem_core_la_CFLAGS = $(AM_CFLAGS) $(FM_LIB_CFLAGS)

lib_LTLIBRARIES += %D%/libfastmem.la
%C%_libfastmem_la_SOURCES = %D%/preload.c
%C%_libfastmem_la_CFLAGS = $(AM_CFLAGS) $(FM_LIB_CFLAGS)
%C%_libfastmem_la_LIBADD = %D%/libfastmem_core.la
%C%_libfastmem_la_LDFLAGS = -version-info 0:0:0 -no-undefined -Wl,-z,now

include_HEADERS += include/fastmem.h
noinst_HEADERS += \
	%D%/block.h \
	%D%/pool.h \
	%D%/diag.h \
	%D%/engine.h \
	%D%/fm.h \
	%D%/heap.h \
	%D%/heap_sys.h \
	%D%/init.h \
	%D%/libc.h \
	%D%/lock.h \
	%D%/options.h \
	%D%/os.h \
	%D%/posix.h \
	%D%/stats.h \
	%D%/symbol.h \
	%D%/tcache.h
