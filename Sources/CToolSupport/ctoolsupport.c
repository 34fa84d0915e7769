#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#ifdef __linux__
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
