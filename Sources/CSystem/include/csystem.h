#ifndef HEADCOUNT_CSYSTEM_H
#define HEADCOUNT_CSYSTEM_H

/// The kernel's view of the wall clock's synchronisation (adjtimex(2) in read-only mode):
/// 1 when it is not synchronised (TIME_ERROR or STA_UNSYNC), 0 when it is, -1 when the call
/// failed. `estimated_error_us` receives the kernel's estimated error in microseconds.
int hc_clock_unsynchronized(long *estimated_error_us);

#endif
