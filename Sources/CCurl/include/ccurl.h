// Typed, non-variadic wrappers around libcurl's variadic calls (curl_easy_setopt, curl_easy_getinfo),
// so Swift never calls a C variadic function.
#ifndef HEADCOUNT_CCURL_H
#define HEADCOUNT_CCURL_H

#include <curl/curl.h>

CURLcode hc_curl_setopt_long(CURL *handle, CURLoption option, long value);

#endif
