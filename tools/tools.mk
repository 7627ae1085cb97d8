# tools/tools.mk - the lfshm command (included by the top Makefile).
#
#   $(B)/tools/lfshm   `lfshm stat [--json] [--watch S] [PID...]`: the rings
#                      processes hold, read-only (man/lfshm.1); built by
#                      `make`, installed to $(BINDIR)/lfshm, tested by
#                      tests/test_tool.c (make check needs it built)

TOOL := $(B)/tools/lfshm
PROGRAMS += $(TOOL)

$(TOOL): tools/lfshm.c include/lfshm.h src/internal.h $(LIB_A) | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(LIB_A) $(LIBS)

.PHONY: tool
tool: $(TOOL)
check: $(TOOL)
