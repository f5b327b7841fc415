# man/: the manual pages, installed by suffix and shipped in the tarball.
dist_man_MANS += \
	%D%/libfastmem.7 \
	%D%/fastmem.1 \
	%D%/fastmem_stats_get.3 \
	%D%/fastmem_stats_print.3 \
	%D%/fastmem_check.3 \
	%D%/fastmem_version.3 \
	%D%/shm_malloc.3 \
	%D%/shm_init.3 \
	%D%/shm_init_flags.3 \
	%D%/shm_calloc.3 \
	%D%/shm_realloc.3 \
	%D%/shm_free.3 \
	%D%/shm_strdup.3 \
	%D%/shm_usable_size.3 \
	%D%/shm_destroy.3 \
	%D%/shm_stats_get.3 \
	%D%/shm_stats_print.3 \
	%D%/shm_check.3
