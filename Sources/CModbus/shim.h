// The one place headcount includes libmodbus (Debian: libmodbus-dev, 3.1.6 in bookworm).
// libmodbus's calls are plain C functions (none variadic) and import into Swift as they are;
// only its error numbers need help: they are macros built on an enum, which Swift does not
// import, so they are restated here as plain enum constants.
#ifndef HEADCOUNT_CMODBUS_SHIM_H
#define HEADCOUNT_CMODBUS_SHIM_H

#include <errno.h>
#include <modbus/modbus.h>

enum {
    CMODBUS_EMBXILFUN = EMBXILFUN,
    CMODBUS_EMBXILADD = EMBXILADD,
    CMODBUS_EMBXILVAL = EMBXILVAL,
    CMODBUS_EMBXSFAIL = EMBXSFAIL,
    CMODBUS_EMBXACK = EMBXACK,
    CMODBUS_EMBXSBUSY = EMBXSBUSY,
    CMODBUS_EMBXNACK = EMBXNACK,
    CMODBUS_EMBXMEMPAR = EMBXMEMPAR,
    CMODBUS_EMBXGPATH = EMBXGPATH,
    CMODBUS_EMBXGTAR = EMBXGTAR,
    CMODBUS_EMBBADCRC = EMBBADCRC,
    CMODBUS_EMBBADDATA = EMBBADDATA,
    CMODBUS_EMBBADEXC = EMBBADEXC,
    CMODBUS_EMBUNKEXC = EMBUNKEXC,
    CMODBUS_EMBMDATA = EMBMDATA,
    CMODBUS_EMBBADSLAVE = EMBBADSLAVE,
};

/// errno as the C library left it: read right after a failed libmodbus call, before anything
/// else can overwrite it.
static inline int cmodbus_errno(void) { return errno; }

#endif
