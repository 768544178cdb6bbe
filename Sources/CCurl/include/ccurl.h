// Typed, non-variadic wrappers around libcurl's variadic calls (curl_easy_setopt, curl_easy_getinfo,
// curl_global_init's flag macros), so Swift never calls a C variadic function and never passes a value
// of the wrong type: each wrapper also checks that the option (or info) is of the kind it carries and
// returns CURLE_BAD_FUNCTION_ARGUMENT if not, where libcurl would read garbage.
//
// Written against libcurl 7.88 (Debian 12); nothing here needs a newer one.
#ifndef HEADCOUNT_CCURL_H
#define HEADCOUNT_CCURL_H

#include <curl/curl.h>

// curl_global_init(CURL_GLOBAL_DEFAULT): once per process, before the first easy handle.
CURLcode hc_curl_global_init(void);

// curl_easy_setopt, one wrapper per argument type.
CURLcode hc_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode hc_curl_setopt_string(CURL *handle, CURLoption option, const char *value);  // NULL resets
CURLcode hc_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode hc_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode hc_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode hc_curl_setopt_write_function(CURL *handle, curl_write_callback callback);
CURLcode hc_curl_setopt_header_function(CURL *handle, curl_write_callback callback);
CURLcode hc_curl_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback);

// Allows only https, for the request and for any redirect: CURLOPT_PROTOCOLS_STR and
// CURLOPT_REDIR_PROTOCOLS_STR where libcurl has them (7.85 and later), else the older bitmask options.
CURLcode hc_curl_restrict_to_https(CURL *handle);

// curl_easy_getinfo, one wrapper per result type.
CURLcode hc_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode hc_curl_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode hc_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
// The string belongs to the handle: valid until the next transfer or curl_easy_cleanup.
CURLcode hc_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value);

// The libcurl actually loaded (not the headers compiled against), e.g. "7.88.1".
const char *hc_curl_version(void);
// 1 if the loaded libcurl can speak HTTP/2 (built with nghttp2), else 0.
int hc_curl_has_http2(void);

#endif
