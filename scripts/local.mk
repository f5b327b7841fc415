# scripts/: the fastmem command, and the helpers behind the README's quick start.
bin_SCRIPTS += %D%/fastmem
CLEANFILES += %D%/fastmem
EXTRA_DIST += \
	%D%/fastmem.in \
	%D%/deps.sh \
	%D%/quickstart.sh \
	%D%/test.sh \
	%D%/overcommit.sh

# Substituted at make time, so that `make install prefix=...` puts the right path in.
%D%/fastmem: %D%/fastmem.in Makefile
	$(AM_V_GEN)$(MKDIR_P) %D% && \
	sed -e 's|@libdir[@]|$(libdir)|g' -e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g' \
	    $(srcdir)/%D%/fastmem.in > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@
