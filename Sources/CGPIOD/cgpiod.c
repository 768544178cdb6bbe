/*
 * cgpiod: see include/cgpiod.h. One file, two branches: libgpiod 1.6 (uAPI v1, line objects
 * owned by the chip) and libgpiod 2.x (uAPI v2, one line request per line). Code shared by
 * both (finding chips by label, waiting with ppoll) sits outside the #ifdefs.
 */
#define _GNU_SOURCE /* ppoll */

#include "cgpiod.h"

#include <dirent.h>
#include <errno.h>
#include <gpiod.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef GPIOD_LINE_BULK_MAX_LINES
#define HC_LIBGPIOD_V1 1
#else
#define HC_LIBGPIOD_V1 0
#endif

struct hc_line {
#if HC_LIBGPIOD_V1
    struct gpiod_line *line; /* owned by the chip; released, not freed */
#else
    struct gpiod_line_request *request;
    unsigned int offset;
#endif
    int is_input;
};

struct hc_gpio_chip {
    struct gpiod_chip *chip;
    int num_lines;
    struct hc_line lines[HC_GPIO_MAX_LINES];
#if !HC_LIBGPIOD_V1
    struct gpiod_edge_event_buffer *events; /* used by hc_gpio_read_edges only */
#endif
};

int hc_gpio_is_libgpiod_v1(void) { return HC_LIBGPIOD_V1; }

int hc_gpio_has_kernel_debounce(void) { return !HC_LIBGPIOD_V1; }

/* ---- finding a chip by label (both versions) ---- */

static int is_gpiochip_entry(const struct dirent *entry)
{
    return strncmp(entry->d_name, "gpiochip", 8) == 0;
}

/* Appends "name\tlabel\terror\n" to found, keeping it NUL-terminated and silently truncated. */
static void note_chip(char *found, size_t found_size, const char *name, const char *label,
                      int error)
{
    if (found == NULL || found_size == 0)
        return;
    size_t used = strlen(found);
    if (used + 1 >= found_size)
        return;
    int written = snprintf(found + used, found_size - used, "%s\t%s\t%d\n", name,
                           label != NULL ? label : "", error);
    if (written < 0)
        found[used] = '\0';
}

/* Opens one chip device and reads its label into label_out; returns NULL with errno. */
static struct gpiod_chip *open_chip(const char *path, char *label_out, size_t label_size)
{
    struct gpiod_chip *chip = gpiod_chip_open(path);
    if (chip == NULL)
        return NULL;
#if HC_LIBGPIOD_V1
    const char *label = gpiod_chip_label(chip);
    snprintf(label_out, label_size, "%s", label != NULL ? label : "");
#else
    struct gpiod_chip_info *info = gpiod_chip_get_info(chip);
    if (info == NULL) {
        int saved = errno;
        gpiod_chip_close(chip);
        errno = saved;
        return NULL;
    }
    const char *label = gpiod_chip_info_get_label(info);
    snprintf(label_out, label_size, "%s", label != NULL ? label : "");
    gpiod_chip_info_free(info);
#endif
    return chip;
}

int hc_gpio_chip_open_by_label(const char *dev_dir, const char *label, hc_gpio_chip **out,
                               char *found, size_t found_size)
{
    if (found != NULL && found_size > 0)
        found[0] = '\0';
    if (label == NULL || out == NULL) {
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    if (dev_dir == NULL)
        dev_dir = "/dev";

    struct dirent **entries = NULL;
    int count = scandir(dev_dir, &entries, is_gpiochip_entry, alphasort);
    if (count < 0) {
        errno = ENOENT; /* nothing to look at is the same, to the caller, as no such chip */
        return -1;
    }

    struct gpiod_chip *match = NULL;
    for (int i = 0; i < count; i++) {
        char path[4096];
        char chip_label[256] = "";
        snprintf(path, sizeof(path), "%s/%s", dev_dir, entries[i]->d_name);
        if (match == NULL) {
            struct gpiod_chip *chip = open_chip(path, chip_label, sizeof(chip_label));
            if (chip == NULL) {
                note_chip(found, found_size, entries[i]->d_name, NULL, errno);
            } else {
                note_chip(found, found_size, entries[i]->d_name, chip_label, 0);
                if (strcmp(chip_label, label) == 0)
                    match = chip;
                else
                    gpiod_chip_close(chip);
            }
        }
        free(entries[i]);
    }
    free(entries);

    if (match == NULL) {
        errno = ENOENT;
        return -1;
    }
    hc_gpio_chip *handle = calloc(1, sizeof(*handle));
    if (handle == NULL) {
        gpiod_chip_close(match);
        errno = ENOMEM;
        return -1;
    }
    handle->chip = match;
#if !HC_LIBGPIOD_V1
    handle->events = gpiod_edge_event_buffer_new(HC_GPIO_MAX_EDGES);
    if (handle->events == NULL) {
        int saved = errno;
        gpiod_chip_close(match);
        free(handle);
        errno = saved;
        return -1;
    }
#endif
    *out = handle;
    return 0;
}

void hc_gpio_chip_close(hc_gpio_chip *chip)
{
    if (chip == NULL)
        return;
    for (int i = 0; i < chip->num_lines; i++) {
#if HC_LIBGPIOD_V1
        gpiod_line_release(chip->lines[i].line);
#else
        gpiod_line_request_release(chip->lines[i].request);
#endif
    }
#if !HC_LIBGPIOD_V1
    gpiod_edge_event_buffer_free(chip->events);
#endif
    gpiod_chip_close(chip->chip);
    free(chip);
}

static struct hc_line *line_at(hc_gpio_chip *chip, int line)
{
    if (chip == NULL || line < 0 || line >= chip->num_lines) {
        errno = EINVAL;
        return NULL;
    }
    return &chip->lines[line];
}

static int check_request(hc_gpio_chip *chip, const char *name, const char *consumer)
{
    if (chip == NULL || name == NULL || consumer == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (chip->num_lines >= HC_GPIO_MAX_LINES) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

#if HC_LIBGPIOD_V1

/* ---- libgpiod 1.6 ---- */

static int request_v1(hc_gpio_chip *chip, const char *name, const char *consumer,
                      int request_type, int flags, int initial, int is_input)
{
    struct gpiod_line *line = gpiod_chip_find_line(chip->chip, name);
    if (line == NULL) {
        if (errno == 0)
            errno = ENOENT;
        return -1;
    }
    struct gpiod_line_request_config config;
    memset(&config, 0, sizeof(config));
    config.consumer = consumer;
    config.request_type = request_type;
    config.flags = flags;
    if (gpiod_line_request(line, &config, initial) < 0)
        return -1;
    int id = chip->num_lines++;
    chip->lines[id].line = line;
    chip->lines[id].is_input = is_input;
    return id;
}

int hc_gpio_request_input(hc_gpio_chip *chip, const char *name, const char *consumer,
                          int active_low, int bias, unsigned int debounce_us)
{
    if (check_request(chip, name, consumer) < 0)
        return -1;
    if (debounce_us != 0) {
        errno = EOPNOTSUPP; /* uAPI v1 has no debounce: the caller does it in software */
        return -1;
    }
    int flags = active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
    switch (bias) {
    case HC_GPIO_BIAS_AS_IS: break;
    case HC_GPIO_BIAS_DISABLED: flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE; break;
    case HC_GPIO_BIAS_PULL_UP: flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP; break;
    case HC_GPIO_BIAS_PULL_DOWN: flags |= GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN; break;
    default: errno = EINVAL; return -1;
    }
    return request_v1(chip, name, consumer, GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES, flags, 0, 1);
}

int hc_gpio_request_output(hc_gpio_chip *chip, const char *name, const char *consumer,
                           int active_low, int initial)
{
    if (check_request(chip, name, consumer) < 0)
        return -1;
    int flags = active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
    return request_v1(chip, name, consumer, GPIOD_LINE_REQUEST_DIRECTION_OUTPUT, flags,
                      initial ? 1 : 0, 0);
}

int hc_gpio_get_value(hc_gpio_chip *chip, int line)
{
    struct hc_line *entry = line_at(chip, line);
    return entry == NULL ? -1 : gpiod_line_get_value(entry->line);
}

int hc_gpio_set_value(hc_gpio_chip *chip, int line, int value)
{
    struct hc_line *entry = line_at(chip, line);
    return entry == NULL ? -1 : gpiod_line_set_value(entry->line, value ? 1 : 0);
}

static int event_fd(struct hc_line *entry) { return gpiod_line_event_get_fd(entry->line); }

int hc_gpio_read_edges(hc_gpio_chip *chip, int line, hc_gpio_edge *edges, int max_edges)
{
    struct hc_line *entry = line_at(chip, line);
    if (entry == NULL)
        return -1;
    if (!entry->is_input || edges == NULL || max_edges <= 0) {
        errno = EINVAL;
        return -1;
    }
    struct gpiod_line_event events[HC_GPIO_MAX_EDGES];
    unsigned int wanted = (unsigned int)(max_edges < HC_GPIO_MAX_EDGES ? max_edges : HC_GPIO_MAX_EDGES);
    int count = gpiod_line_event_read_multiple(entry->line, events, wanted);
    for (int i = 0; i < count; i++) {
        edges[i].timestamp_ns = (uint64_t)events[i].ts.tv_sec * 1000000000u
                                + (uint64_t)events[i].ts.tv_nsec;
        edges[i].rising = events[i].event_type == GPIOD_LINE_EVENT_RISING_EDGE;
    }
    return count;
}

#else

/* ---- libgpiod 2.x ---- */

static enum gpiod_line_bias bias_v2(int bias)
{
    switch (bias) {
    case HC_GPIO_BIAS_DISABLED: return GPIOD_LINE_BIAS_DISABLED;
    case HC_GPIO_BIAS_PULL_UP: return GPIOD_LINE_BIAS_PULL_UP;
    case HC_GPIO_BIAS_PULL_DOWN: return GPIOD_LINE_BIAS_PULL_DOWN;
    default: return GPIOD_LINE_BIAS_AS_IS;
    }
}

/* Requests one line with `settings`; frees nothing it did not allocate. */
static int request_v2(hc_gpio_chip *chip, const char *name, const char *consumer,
                      struct gpiod_line_settings *settings, int is_input)
{
    int offset = gpiod_chip_get_line_offset_from_name(chip->chip, name);
    if (offset < 0) {
        if (errno == 0)
            errno = ENOENT;
        return -1;
    }
    unsigned int offsets[1] = { (unsigned int)offset };
    struct gpiod_line_config *line_config = gpiod_line_config_new();
    struct gpiod_request_config *request_config = gpiod_request_config_new();
    struct gpiod_line_request *request = NULL;
    int saved = ENOMEM;
    if (line_config != NULL && request_config != NULL) {
        gpiod_request_config_set_consumer(request_config, consumer);
        if (gpiod_line_config_add_line_settings(line_config, offsets, 1, settings) == 0)
            request = gpiod_chip_request_lines(chip->chip, request_config, line_config);
        saved = errno;
    }
    gpiod_request_config_free(request_config);
    gpiod_line_config_free(line_config);
    if (request == NULL) {
        errno = saved;
        return -1;
    }
    int id = chip->num_lines++;
    chip->lines[id].request = request;
    chip->lines[id].offset = (unsigned int)offset;
    chip->lines[id].is_input = is_input;
    return id;
}

int hc_gpio_request_input(hc_gpio_chip *chip, const char *name, const char *consumer,
                          int active_low, int bias, unsigned int debounce_us)
{
    if (check_request(chip, name, consumer) < 0)
        return -1;
    if (bias < HC_GPIO_BIAS_AS_IS || bias > HC_GPIO_BIAS_PULL_DOWN) {
        errno = EINVAL;
        return -1;
    }
    struct gpiod_line_settings *settings = gpiod_line_settings_new();
    if (settings == NULL)
        return -1;
    int id = -1;
    if (gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_INPUT) == 0
        && gpiod_line_settings_set_edge_detection(settings, GPIOD_LINE_EDGE_BOTH) == 0
        && gpiod_line_settings_set_bias(settings, bias_v2(bias)) == 0
        && gpiod_line_settings_set_event_clock(settings, GPIOD_LINE_CLOCK_MONOTONIC) == 0) {
        gpiod_line_settings_set_active_low(settings, active_low != 0);
        gpiod_line_settings_set_debounce_period_us(settings, debounce_us);
        id = request_v2(chip, name, consumer, settings, 1);
    }
    int saved = errno;
    gpiod_line_settings_free(settings);
    errno = saved;
    return id;
}

int hc_gpio_request_output(hc_gpio_chip *chip, const char *name, const char *consumer,
                           int active_low, int initial)
{
    if (check_request(chip, name, consumer) < 0)
        return -1;
    struct gpiod_line_settings *settings = gpiod_line_settings_new();
    if (settings == NULL)
        return -1;
    int id = -1;
    if (gpiod_line_settings_set_direction(settings, GPIOD_LINE_DIRECTION_OUTPUT) == 0
        && gpiod_line_settings_set_drive(settings, GPIOD_LINE_DRIVE_PUSH_PULL) == 0
        && gpiod_line_settings_set_output_value(
               settings, initial ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE) == 0) {
        gpiod_line_settings_set_active_low(settings, active_low != 0);
        id = request_v2(chip, name, consumer, settings, 0);
    }
    int saved = errno;
    gpiod_line_settings_free(settings);
    errno = saved;
    return id;
}

int hc_gpio_get_value(hc_gpio_chip *chip, int line)
{
    struct hc_line *entry = line_at(chip, line);
    if (entry == NULL)
        return -1;
    enum gpiod_line_value value = gpiod_line_request_get_value(entry->request, entry->offset);
    if (value == GPIOD_LINE_VALUE_ERROR)
        return -1;
    return value == GPIOD_LINE_VALUE_ACTIVE ? 1 : 0;
}

int hc_gpio_set_value(hc_gpio_chip *chip, int line, int value)
{
    struct hc_line *entry = line_at(chip, line);
    if (entry == NULL)
        return -1;
    return gpiod_line_request_set_value(entry->request, entry->offset,
                                        value ? GPIOD_LINE_VALUE_ACTIVE : GPIOD_LINE_VALUE_INACTIVE);
}

static int event_fd(struct hc_line *entry) { return gpiod_line_request_get_fd(entry->request); }

int hc_gpio_read_edges(hc_gpio_chip *chip, int line, hc_gpio_edge *edges, int max_edges)
{
    struct hc_line *entry = line_at(chip, line);
    if (entry == NULL)
        return -1;
    if (!entry->is_input || edges == NULL || max_edges <= 0) {
        errno = EINVAL;
        return -1;
    }
    size_t wanted = (size_t)(max_edges < HC_GPIO_MAX_EDGES ? max_edges : HC_GPIO_MAX_EDGES);
    int count = gpiod_line_request_read_edge_events(entry->request, chip->events, wanted);
    for (int i = 0; i < count; i++) {
        struct gpiod_edge_event *event =
            gpiod_edge_event_buffer_get_event(chip->events, (unsigned long)i);
        edges[i].timestamp_ns = gpiod_edge_event_get_timestamp_ns(event);
        edges[i].rising = gpiod_edge_event_get_event_type(event) == GPIOD_EDGE_EVENT_RISING_EDGE;
    }
    return count;
}

#endif

/* ---- waiting (both versions) ---- */

int hc_gpio_wait(hc_gpio_chip *chip, int64_t timeout_ns, int *ready, int max_ready)
{
    if (chip == NULL || (ready == NULL && max_ready > 0)) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd fds[HC_GPIO_MAX_LINES];
    int ids[HC_GPIO_MAX_LINES];
    nfds_t count = 0;
    for (int i = 0; i < chip->num_lines; i++) {
        if (!chip->lines[i].is_input)
            continue;
        fds[count].fd = event_fd(&chip->lines[i]);
        fds[count].events = POLLIN | POLLPRI;
        fds[count].revents = 0;
        ids[count] = i;
        count++;
    }
    struct timespec timeout;
    if (timeout_ns >= 0) {
        timeout.tv_sec = (time_t)(timeout_ns / 1000000000);
        timeout.tv_nsec = (long)(timeout_ns % 1000000000);
    }
    int polled = ppoll(fds, count, timeout_ns >= 0 ? &timeout : NULL, NULL);
    if (polled < 0)
        return errno == EINTR ? 0 : -1;
    int stored = 0;
    for (nfds_t i = 0; i < count && stored < max_ready; i++) {
        /* POLLERR/POLLHUP/POLLNVAL count as ready: the read then reports the line's error. */
        if (fds[i].revents != 0)
            ready[stored++] = ids[i];
    }
    return stored;
}
