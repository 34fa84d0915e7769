#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#ifdef __linux__
#include <malloc.h>
#include <sys/prctl.h>
#endif
#include "ctoolsupport.h"

void signtransfer_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

int signtransfer_die_with_parent(void) {
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    // The parent may have died before the call: then nobody will send the signal.
    return getppid() == 1 ? -1 : 0;
}

void signtransfer_keep_freed_memory(void) {
#if defined(__linux__) && defined(__GLIBC__)
    // glibc maps every block from 128 KB up on its own and unmaps it when freed, and trims freed heap
    // back to the system: each unmap makes the kernel flush every core's TLB. Ingest frees one such
    // block per image on every core (libjpeg's coefficient arrays); with these thresholds freed
    // memory is reused instead (ingest of 2,500 photos: 0.53 s to 0.39 s, system time 0.27 to 0.10).
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}
