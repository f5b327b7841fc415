# man/: the manual pages, installed by suffix and shipped in the tarball.
dist_man_MANS += \
	%D%/libfastmem.7 \
	%D%/fastmem.1 \
	%D%/fastmem_stats_get.3 \
	%D%/fastmem_stats_print.3 \
	%D%/fastmem_version.3
