// The cores this process may run on: its CPU affinity (taskset, Slurm's --cpus-per-task, cgroup
// cpusets), which ProcessInfo.activeProcessorCount does not read on Linux.
#if defined(__linux__)
#define _GNU_SOURCE
#include <sched.h>
#endif

#include "cores.h"

int st_usable_cores(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}
