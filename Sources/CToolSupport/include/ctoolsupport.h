#ifndef SIGNTRANSFER_CTOOLSUPPORT_H
#define SIGNTRANSFER_CTOOLSUPPORT_H

/// Makes stdout line-buffered even when it is a file or a pipe, so that a tool's log keeps its
/// stdout lines in order with its stderr lines, and a killed tool loses none of what it printed.
/// (Swift 6 will not touch C's `stdout`, shared mutable state to it.)
void signtransfer_line_buffer_stdout(void);

/// Asks Linux to kill this process when its parent dies (prctl PR_SET_PDEATHSIG, which Swift cannot
/// call: it is variadic). Returns -1 if the parent is already gone (adopted by init), else 0.
int signtransfer_die_with_parent(void);

/// Batch-tool memory policy (glibc): large freed blocks are kept for reuse rather than returned to
/// the system at once. A no-op elsewhere.
void signtransfer_keep_freed_memory(void);

#endif
