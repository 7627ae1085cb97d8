/* SPDX-License-Identifier: MIT */
/*
 * Runtime version query (as liburing's io_uring_major_version() and
 * friends): a program built against one header can ask which library it
 * runs with.  The numbers are the header's LFSHM_VERSION_* at the time the
 * library was built; make install-check compares the string with the
 * Version of the installed lfshm.pc.
 */
#include "internal.h"

#define LFSHM__STR_(x) #x
#define LFSHM__STR(x) LFSHM__STR_(x)

LFSHM__EXPORT const char *lfshm_version(void)
{
	return LFSHM__STR(LFSHM_VERSION_MAJOR) "." LFSHM__STR(
		LFSHM_VERSION_MINOR) "." LFSHM__STR(LFSHM_VERSION_PATCH);
}

LFSHM__EXPORT int lfshm_version_major(void)
{
	return LFSHM_VERSION_MAJOR;
}

LFSHM__EXPORT int lfshm_version_minor(void)
{
	return LFSHM_VERSION_MINOR;
}

LFSHM__EXPORT int lfshm_version_check(int major, int minor)
{
	return major == LFSHM_VERSION_MAJOR && minor <= LFSHM_VERSION_MINOR;
}
