#include "ccurl.h"

// Option numbers encode their argument type in ranges of 10000 (see CURLOPTTYPE_* in curl.h).
static int option_kind(CURLoption option) { return (int)option / 10000; }

enum { kind_long = 0, kind_pointer = 1, kind_function = 2, kind_off_t = 3, kind_blob = 4 };

CURLcode hc_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }

CURLcode hc_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    if (option_kind(option) != kind_long) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_setopt(handle, option, value);
}

CURLcode hc_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    if (option_kind(option) != kind_pointer) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_setopt(handle, option, value);
}

CURLcode hc_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    if (option_kind(option) != kind_pointer) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_setopt(handle, option, value);
}

CURLcode hc_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    if (option_kind(option) != kind_off_t) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_setopt(handle, option, value);
}

CURLcode hc_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    if (option_kind(option) != kind_pointer) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_setopt(handle, option, value);
}

CURLcode hc_curl_setopt_write_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

CURLcode hc_curl_setopt_header_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}

CURLcode hc_curl_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode hc_curl_restrict_to_https(CURL *handle) {
#if LIBCURL_VERSION_NUM >= 0x075500
    CURLcode result = curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "https");
    if (result == CURLE_OK) result = curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    if (result != CURLE_UNKNOWN_OPTION) return result;
    // Headers newer than the libcurl loaded at run time: fall back to the bitmask options below.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    CURLcode fallback = curl_easy_setopt(handle, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
    if (fallback == CURLE_OK) fallback = curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
    return fallback;
#if LIBCURL_VERSION_NUM >= 0x075500
#pragma GCC diagnostic pop
#endif
}

static int info_kind_is(CURLINFO info, unsigned kind) { return ((unsigned)info & CURLINFO_TYPEMASK) == kind; }

CURLcode hc_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    if (!info_kind_is(info, CURLINFO_LONG)) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_getinfo(handle, info, value);
}

CURLcode hc_curl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    if (!info_kind_is(info, CURLINFO_DOUBLE)) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_getinfo(handle, info, value);
}

CURLcode hc_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    if (!info_kind_is(info, CURLINFO_OFF_T)) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_getinfo(handle, info, value);
}

CURLcode hc_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    if (!info_kind_is(info, CURLINFO_STRING)) return CURLE_BAD_FUNCTION_ARGUMENT;
    return curl_easy_getinfo(handle, info, value);
}

const char *hc_curl_version(void) { return curl_version_info(CURLVERSION_NOW)->version; }

int hc_curl_has_http2(void) { return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0; }
