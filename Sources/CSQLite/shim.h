// Debian's libsqlite3-dev: the outbox uses the C API directly.
#include <sqlite3.h>
