/*
 * cgpiod: the one C shim between headcount and libgpiod.
 *
 * It compiles against libgpiod 1.6 (Debian/Raspberry Pi OS bookworm) and 2.x (trixie); the
 * presence of GPIOD_LINE_BULK_MAX_LINES, defined only by 1.x's gpiod.h, selects the 1.6 branch.
 * The API below is plain C for Swift: an opaque handle, ints, errno-style results, no variadics,
 * no libgpiod types.
 *
 * Conventions: functions returning int return -1 and set errno on failure. Line ids are small
 * non-negative ints handed out by hc_gpio_request_input/_output, valid for one handle. Values
 * are logical (active-low already applied by the kernel): 1 = active, 0 = inactive.
 *
 * Threading: one thread may wait for and read edges (hc_gpio_wait, hc_gpio_read_edges) while
 * another reads values and sets outputs; requesting and closing must not overlap any other call
 * on the same handle (the Swift layer serialises them).
 */
#ifndef HEADCOUNT_CGPIOD_H
#define HEADCOUNT_CGPIOD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An open GPIO chip and the lines requested on it. */
typedef struct hc_gpio_chip hc_gpio_chip;

/** Most lines one handle can hold (inputs and outputs together). */
#define HC_GPIO_MAX_LINES 64

/** Most edge events hc_gpio_read_edges returns per call. */
#define HC_GPIO_MAX_EDGES 64

/** Internal bias for an input. */
enum hc_gpio_bias {
    HC_GPIO_BIAS_AS_IS = 0,
    HC_GPIO_BIAS_DISABLED = 1,
    HC_GPIO_BIAS_PULL_UP = 2,
    HC_GPIO_BIAS_PULL_DOWN = 3,
};

/** One edge event, as the kernel timestamped it. */
typedef struct hc_gpio_edge {
    /** Kernel timestamp, CLOCK_MONOTONIC, in nanoseconds. */
    uint64_t timestamp_ns;
    /** 1 for a rising edge (logical inactive -> active), 0 for falling. */
    int rising;
} hc_gpio_edge;

/** 1 when built against libgpiod 1.x, 0 for 2.x. */
int hc_gpio_is_libgpiod_v1(void);

/**
 * 1 when the kernel debounces inputs for us (libgpiod 2.x, GPIO uAPI v2); 0 for 1.6, whose
 * uAPI v1 has no debounce: hc_gpio_request_input then refuses a non-zero debounce_us with
 * EOPNOTSUPP and the caller debounces in software.
 */
int hc_gpio_has_kernel_debounce(void);

/**
 * Opens the GPIO chip whose label is `label`, looking at every "gpiochip*" entry of `dev_dir`
 * (NULL means "/dev") in name order. Never opens a chip by number.
 *
 * On success returns 0 and stores the handle in *out. When no chip carries that label returns
 * -1 with errno = ENOENT (also when `dev_dir` has no chips or cannot be listed). Other errors
 * (ENOMEM) return -1 with that errno.
 *
 * In every case, when `found` is not NULL, it receives what was seen, NUL-terminated and
 * truncated to `found_size`: one line per chip, each "name\tlabel\t0" for a chip that opened
 * or "name\t\terrno" (decimal) for one that could not be opened or read.
 */
int hc_gpio_chip_open_by_label(const char *dev_dir, const char *label, hc_gpio_chip **out,
                               char *found, size_t found_size);

/** Releases every requested line, closes the chip and frees the handle. NULL is ignored. */
void hc_gpio_chip_close(hc_gpio_chip *chip);

/**
 * Requests the line named `name` as an input with both-edge events, monotonic event
 * timestamps (uAPI v1 has used CLOCK_MONOTONIC since Linux 5.7; v2 is asked for it), the
 * given bias (enum hc_gpio_bias), active-low (0/1) and debounce (microseconds, 0 = none).
 * Returns the line id, or -1 with errno: ENOENT no line of that name, EBUSY already in use,
 * EOPNOTSUPP debounce on 1.6, ENOSPC handle full, EINVAL bad argument, others from the kernel.
 */
int hc_gpio_request_input(hc_gpio_chip *chip, const char *name, const char *consumer,
                          int active_low, int bias, unsigned int debounce_us);

/**
 * Requests the line named `name` as a push-pull output driven to `initial` (logical 0/1).
 * Returns the line id, or -1 with errno as for hc_gpio_request_input.
 */
int hc_gpio_request_output(hc_gpio_chip *chip, const char *name, const char *consumer,
                           int active_low, int initial);

/** The current logical value (0/1) of a requested line, or -1 with errno. */
int hc_gpio_get_value(hc_gpio_chip *chip, int line);

/** Drives an output line to `value` (logical 0/1). Returns 0, or -1 with errno. */
int hc_gpio_set_value(hc_gpio_chip *chip, int line, int value);

/**
 * Waits up to `timeout_ns` (negative: forever) until an input has edge events pending.
 * Returns how many line ids it stored in `ready` (at most `max_ready`), 0 on timeout or when
 * interrupted by a signal, or -1 with errno.
 */
int hc_gpio_wait(hc_gpio_chip *chip, int64_t timeout_ns, int *ready, int max_ready);

/**
 * Reads up to `max_edges` (at most HC_GPIO_MAX_EDGES) pending events of input `line` into
 * `edges`, oldest first. Blocks if none is pending: call after hc_gpio_wait named the line.
 * Returns the count, or -1 with errno.
 */
int hc_gpio_read_edges(hc_gpio_chip *chip, int line, hc_gpio_edge *edges, int max_edges);

#ifdef __cplusplus
}
#endif

#endif /* HEADCOUNT_CGPIOD_H */
