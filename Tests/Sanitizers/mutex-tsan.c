// Makes Synchronization's Mutex visible to ThreadSanitizer, for `make sanitize` only: built into
// .build-tsan/libmutex-tsan.so and loaded with LD_PRELOAD into the TSan test run and every process it
// starts. Never part of headcount itself.
//
// Why: on Linux, Mutex.withLock inlines an uncontended lock and unlock into our code (an atomic
// compare-exchange on the lock word, which TSan instruments), but a contended lock or unlock calls
// _MutexHandle._lockSlow / _tryLockSlow / _unlockSlow in libswiftSynchronization.so, which is not
// instrumented: a spin on a plain compare-exchange, then futex(FUTEX_LOCK_PI / FUTEX_UNLOCK_PI). TSan
// then sees no acquire or release, so two threads taking turns at a contended Mutex look unordered and
// every access inside withLock is reported as a race (the outbox, the delivery thread, the sounder,
// the engine thread, the Modbus bus...). A suppressions file cannot tell those apart from real races:
// the reports are in our code, and the slow path is in neither stack.
//
// How: these functions take the library's symbol names, so the calls our inlined code makes land
// here first; each calls the library's own function (dlsym RTLD_NEXT) and tells TSan what it did,
// __tsan_acquire on the lock word after a slow lock, __tsan_release before a slow unlock: the same
// happens-before edges TSan draws for a pthread mutex. Real races, on anything outside a lock, are
// still reported. `self` (the _MutexHandle, borrowed, so its address) comes in the swiftself register,
// which clang's swift_context parameter is. The __tsan_* functions are weak: processes that are not
// TSan builds (python, socat, openssl, the `swift test` driver) load this library too and never call
// them. If a toolchain renames these entry points, nothing lands here and the false reports return:
// loud, not silent.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWIFTCALL __attribute__((swiftcall))
#define SWIFT_SELF __attribute__((swift_context))

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRY_LOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

__attribute__((weak)) void __tsan_acquire(void *address);
__attribute__((weak)) void __tsan_release(void *address);

typedef SWIFTCALL void (*LockSlow)(uint32_t owner, void *SWIFT_SELF handle);
typedef SWIFTCALL bool (*TryLockSlow)(void *SWIFT_SELF handle);
typedef SWIFTCALL void (*UnlockSlow)(void *SWIFT_SELF handle);

/// The library's function, looked up once (a benign race: every thread finds the same address).
static void *next(void **cache, const char *name) {
    void *found = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (found == NULL) {
        found = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, found, __ATOMIC_RELAXED);
    }
    return found;
}

SWIFTCALL void lock_slow(uint32_t owner, void *SWIFT_SELF handle) __asm__(LOCK_SLOW);
SWIFTCALL bool try_lock_slow(void *SWIFT_SELF handle) __asm__(TRY_LOCK_SLOW);
SWIFTCALL void unlock_slow(void *SWIFT_SELF handle) __asm__(UNLOCK_SLOW);

SWIFTCALL void lock_slow(uint32_t owner, void *SWIFT_SELF handle) {
    static void *real;
    ((LockSlow)next(&real, LOCK_SLOW))(owner, handle);
    if (__tsan_acquire != NULL) __tsan_acquire(handle);
}

SWIFTCALL bool try_lock_slow(void *SWIFT_SELF handle) {
    static void *real;
    bool locked = ((TryLockSlow)next(&real, TRY_LOCK_SLOW))(handle);
    if (locked && __tsan_acquire != NULL) __tsan_acquire(handle);
    return locked;
}

SWIFTCALL void unlock_slow(void *SWIFT_SELF handle) {
    static void *real;
    if (__tsan_release != NULL) __tsan_release(handle);
    ((UnlockSlow)next(&real, UNLOCK_SLOW))(handle);
}
