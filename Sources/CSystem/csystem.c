#include "csystem.h"

#include <sys/timex.h>

int hc_clock_unsynchronized(long *estimated_error_us) {
    struct timex timex = {0};  // modes = 0: read only
    int state = adjtimex(&timex);
    if (state == -1) return -1;
    if (estimated_error_us) *estimated_error_us = timex.esterror;
    return (state == TIME_ERROR || (timex.status & STA_UNSYNC)) ? 1 : 0;
}
