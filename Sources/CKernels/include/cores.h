#ifndef SIGNTRANSFER_CORES_H
#define SIGNTRANSFER_CORES_H

/// How many CPUs this process's affinity allows (Linux), or 0 where that cannot be read.
int st_usable_cores(void);

#endif
