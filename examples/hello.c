/* SPDX-License-Identifier: MIT */
/*
 * hello: the smallest complete lfshm program.  A parent creates an SPSC
 * ring, forks a child that attaches as producer and sends ten messages;
 * the parent receives them and sees -EPIPE when the child has closed.
 *
 *   cc hello.c $(pkg-config --cflags --libs lfshm) -o hello && ./hello
 */
#include <errno.h>
#include <lfshm.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	struct lfshm_ring_config cfg = { .kind = LFSHM_SPSC, .capacity = 4096 };
	struct lfshm_ring *rx, *tx;
	char msg[64];
	long n;
	int rc, got = 0, st, fd;
	pid_t pid;

	rc = lfshm_ring_create(&cfg, LFSHM_CONSUMER, &rx);
	if (rc) {
		fprintf(stderr, "create: %s\n", lfshm_strerror(rc));
		return 1;
	}
	fd = lfshm_ring_fd(rx); /* the child inherits it */
	pid = fork();
	if (pid == 0) {
		int i;

		/* attach through the inherited fd first: closing the inherited
		 * handle closes that fd (and only unmaps, it never touches
		 * the parent's role) */
		if (lfshm_ring_attach(fd, LFSHM_PRODUCER, &tx))
			_exit(1);
		lfshm_ring_close(rx);
		for (i = 0; i < 10; i++) {
			int len = snprintf(msg, sizeof(msg), "hello %d", i);

			if (lfshm_ring_send(tx, msg, (uint32_t)len, -1))
				_exit(2);
		}
		lfshm_ring_close(tx); /* the consumer sees -EPIPE after these */
		_exit(0);
	}
	while ((n = lfshm_ring_recv(rx, msg, sizeof(msg) - 1, -1)) >= 0) {
		msg[n] = '\0';
		printf("%s\n", msg);
		got++;
	}
	waitpid(pid, &st, 0);
	lfshm_ring_close(rx);
	if (n != -EPIPE || got != 10 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "hello: got %d messages, ended with %s\n", got,
			lfshm_strerror((int)n));
		return 1;
	}
	return 0;
}
