# examples/examples.mk - the event-loop examples (included by the Makefile).
#
#   make examples          build $(B)/examples/{uring_server,epoll_server,client}
#   make examples-smoke    each server + clients, one killed mid-stream,
#                          both wait paths, io_uring and epoll clients
#                          (make test runs it)
#   make examples-latency  round-trip latency, 1 and 16 clients, io_uring
#                          futex path vs eventfd path, in one run

EX_DIR   := $(B)/examples
EX_PROGS := $(EX_DIR)/uring_server $(EX_DIR)/epoll_server $(EX_DIR)/client
# installed with the docs ($(DOCDIR)/examples) by make install
EX_SRCS  := examples/echo.h examples/hello.c examples/uring_server.c \
	    examples/epoll_server.c examples/client.c
PROGRAMS   += $(EX_PROGS)
TEST_EXTRA += examples-smoke

$(EX_DIR)/%: examples/%.c examples/echo.h include/lfshm.h $(LIB_A) | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iexamples $< -o $@ $(LDFLAGS) $(LIB_A) $(LIBS)

.PHONY: examples examples-smoke examples-latency
examples: $(EX_PROGS)

examples-smoke: $(EX_PROGS)
	sh examples/smoke.sh $(EX_DIR)

examples-latency: $(EX_PROGS)
	sh examples/latency.sh $(EX_DIR)
