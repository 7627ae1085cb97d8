/* SPDX-License-Identifier: MIT */
/* The request/response header of the echo example (uring_server, client). */
#ifndef LFSHM_EXAMPLE_ECHO_H
#define LFSHM_EXAMPLE_ECHO_H

#include <stdint.h>

#define ECHO_MAGIC 0x4f484345u /* "ECHO" */
#define ECHO_DEFAULT_PATH "/tmp/lfshm-echo.sock"

/* Every message (both ways): this header, then len payload bytes.  The
 * server checks magic and len and sends the message back unchanged. */
struct echo_hdr {
	uint32_t magic;
	uint32_t len;  /* payload bytes after the header */
	uint64_t seq;  /* request number, per client */
	uint64_t t_ns; /* client's send time (CLOCK_MONOTONIC) */
};

#endif
