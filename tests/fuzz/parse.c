/*
 * A libFuzzer target for the request parser, http.c, alone.
 *
 * It fuzzes a step's own parser, not a copy: the Makefile links the
 * step's http.c (one target for each version of it, tests/fuzz/parsers),
 * and this file sees what any server.c sees, http.h, and nothing else.
 * Build and run with: make fuzz (see tests/fuzz/run).
 *
 * For each input, the target does with the bytes a client sends what the
 * server does before it answers, minus the sockets:
 *   1. find_head_end() on the input all at once, one byte at a time, and in
 *      pieces of 2 to 17 bytes (the input picks): all must find the same end,
 *      since the server scans again after every read(2), from where it was;
 *      the head found ends in an empty line, and holds no earlier end;
 *   2. parse_head() on a copy of the head alone, in a heap buffer of exactly
 *      its length, so that AddressSanitizer catches a read one byte past it;
 *   3. checks what a parsed request promises, with checks of its own rather
 *      than the parser's (which are static, and could be wrong the same
 *      way): every string it points to ends inside the head (or, for the
 *      path of a target in absolute-form, inside origin_form); the method is
 *      made of tchar, and its number is its name's; the target is visible
 *      ASCII, within TARGET_MAX, and its form agrees with the method; the
 *      version is HTTP/1.x; each field is a token, a colon and a value
 *      without control characters or spaces around it; Host and
 *      Content-Length are the fields sent, the one a uri-host and port, the
 *      other the body's length, within BODY_MAX; no Transfer-Encoding; and
 *      a rejection has a status the parser may give, and a reason.
 * Any broken promise calls abort(), which libFuzzer reports as a crash.
 * The responses are fuzzed apart, step by step: tests/fuzz/respond.c.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen(3), strncasecmp(3) */

#include "http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Like assert(), but never compiled out. */
#define require(condition)                                                             \
    do {                                                                               \
        if (!(condition)) {                                                            \
            fprintf(stderr, "fuzz/parse.c:%d: broken promise: %s\n", __LINE__,         \
                    #condition);                                                       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* ==== Characters, as RFC 9110 and RFC 3986 name them ==== */

static bool is_in(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || is_in(c, "abcdefABCDEF");
}

/* tchar, RFC 9110 section 5.6.2. */
static bool is_tchar(char c)
{
    return is_digit(c) || is_alpha(c) || is_in(c, "!#$%&'*+-.^_`|~");
}

/* 1*tchar: what methods and field names are. */
static bool is_token_text(const char *text)
{
    if (text[0] == '\0')
        return false;
    for (const char *c = text; *c != '\0'; c++)
        if (!is_tchar(*c))
            return false;
    return true;
}

static bool is_all_digits(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (!is_digit(text[i]))
            return false;
    return true;
}

/* uri-host [ ":" port ], RFC 3986 section 3.2.2: an IP-literal in brackets
   (here only its characters are checked: hex digits, colons and dots), or
   a reg-name of unreserved characters, sub-delims and %XX, maybe empty. */
static bool is_host_text(const char *text, size_t length)
{
    size_t host_length;

    if (length > 0 && text[0] == '[') {
        const char *bracket = memchr(text, ']', length);
        if (bracket == NULL)
            return false;
        host_length = (size_t)(bracket + 1 - text);
        for (size_t i = 1; i < host_length - 1; i++)
            if (!is_hex(text[i]) && text[i] != ':' && text[i] != '.')
                return false;
    } else {
        const char *colon = memchr(text, ':', length);
        host_length = colon == NULL ? length : (size_t)(colon - text);
        for (size_t i = 0; i < host_length; i++) {
            if (text[i] == '%' && i + 2 < host_length && is_hex(text[i + 1]) &&
                is_hex(text[i + 2]))
                i += 2;
            else if (!is_digit(text[i]) && !is_alpha(text[i]) &&
                     !is_in(text[i], "-._~!$&'()*+,;="))
                return false;
        }
    }
    if (host_length == length)
        return true;
    return text[host_length] == ':' &&
           is_all_digits(text + host_length + 1, length - host_length - 1);
}

/* ==== What a parsed request promises ==== */

/* A string the parser hands out must start and end inside the head. */
static void require_inside(const char *text, const char *head, size_t length)
{
    if (text == NULL)
        return;
    require(text >= head && text < head + length);
    size_t text_length = strnlen(text, (size_t)(head + length - text));
    require(text + text_length < head + length); /* its NUL is in the head too */
}

/* The methods http.h numbers, by name: the number must be the name's. */
static const struct {
    enum method method;
    const char *name;
} METHODS[] = {
    {METHOD_GET, "GET"},         {METHOD_HEAD, "HEAD"},     {METHOD_POST, "POST"},
    {METHOD_PUT, "PUT"},         {METHOD_DELETE, "DELETE"}, {METHOD_CONNECT, "CONNECT"},
    {METHOD_OPTIONS, "OPTIONS"}, {METHOD_TRACE, "TRACE"},   {METHOD_PATCH, "PATCH"},
};

static enum method method_named(const char *name)
{
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strcmp(name, METHODS[i].name) == 0)
            return METHODS[i].method;
    return METHOD_UNKNOWN;
}

/* The request-target: visible ASCII, within TARGET_MAX; "*" for OPTIONS
   only; "/..." as sent (origin-form), or "http://host/..." (absolute-form),
   whose path the parser built in origin_form: "/" and what follows the
   host. */
static void require_target(const struct request *request, const char *head,
                           size_t length)
{
    const char *target = request->target;

    require_inside(target, head, length);
    require(target[0] != '\0' && strlen(target) <= TARGET_MAX);
    for (const unsigned char *c = (const unsigned char *)target; *c != '\0'; c++)
        require(*c > ' ' && *c < 0x7f);
    require(request->path != NULL);
    if (strcmp(target, "*") == 0) {
        require(request->method == METHOD_OPTIONS && request->path == target);
    } else if (target[0] == '/') {
        require(request->path == target);
    } else {
        size_t scheme = strncasecmp(target, "http://", 7) == 0    ? 7
                        : strncasecmp(target, "https://", 8) == 0 ? 8
                                                                  : 0;
        require(scheme > 0);
        const char *authority = target + scheme;
        size_t authority_length = strcspn(authority, "/?");
        require(authority_length > 0 && authority[0] != ':');
        require(is_host_text(authority, authority_length));
        const char *rest = authority + authority_length;
        require(request->path == request->origin_form);
        require(strnlen(request->origin_form, sizeof request->origin_form) <
                sizeof request->origin_form);
        require(request->path[0] == '/');
        require(strcmp(request->path + (rest[0] == '/' ? 0 : 1), rest) == 0);
    }
}

/* The value of the last field named `name`, and how many there are. */
static const char *find_field(const struct request *request, const char *name,
                              size_t *count)
{
    const char *value = NULL;

    *count = 0;
    for (size_t i = 0; i < request->field_count; i++) {
        if (strcasecmp(request->fields[i].name, name) == 0) {
            value = request->fields[i].value;
            (*count)++;
        }
    }
    return value;
}

/* The header fields, and what Host and Content-Length say. */
static void require_fields(const struct request *request, const char *head,
                           size_t length)
{
    require(request->field_count <= FIELDS_MAX);
    for (size_t i = 0; i < request->field_count; i++) {
        const char *name = request->fields[i].name;
        const char *value = request->fields[i].value;
        require_inside(name, head, length);
        require_inside(value, head, length);
        require(is_token_text(name));
        require(strlen(name) + 1 + strlen(value) <= FIELD_LINE_MAX);
        for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++)
            require((*c >= ' ' || *c == '\t') && *c != 0x7f); /* obs-text is fine */
        size_t value_length = strlen(value);
        require(value_length == 0 ||
                (!is_in(value[0], " \t") && !is_in(value[value_length - 1], " \t")));
    }

    size_t hosts;
    const char *host = find_field(request, "Host", &hosts);
    require_inside(request->host, head, length);
    require(request->host == host && request->host_count == hosts);
    require(hosts == 1 || (hosts == 0 && is_http_1_0(request)));
    require(host == NULL || is_host_text(host, strlen(host)));

    size_t lengths;
    const char *content_length = find_field(request, "Content-Length", &lengths);
    require_inside(request->content_length, head, length);
    require(request->content_length == content_length && lengths <= 1);
    if (content_length == NULL) {
        require(request->body_length == 0);
    } else {
        require(is_all_digits(content_length, strlen(content_length)) &&
                content_length[0] != '\0');
        size_t zeros = strspn(content_length, "0");
        require(strlen(content_length + zeros) <= 5); /* BODY_MAX has 5 digits */
        require(strtoul(content_length, NULL, 10) == request->body_length);
    }
    require(request->body_length <= BODY_MAX);

    size_t codings;
    require(find_field(request, "Transfer-Encoding", &codings) == NULL && codings == 0);
    require(request->transfer_encoding == NULL);
    require(request->body == NULL); /* the body is the server's to find */
}

static bool is_parser_status(int status)
{
    return status == 400 || status == 413 || status == 414 || status == 431 ||
           status == 501 || status == 505;
}

/* What parse_head() promises, for a head of `length` bytes at `head`. */
static void require_parsed(struct rejection rejection, const struct request *request,
                           const char *head, size_t length)
{
    if (rejected(rejection)) {
        require(is_parser_status(rejection.status));
        require(rejection.reason[0] != '\0');
        return;
    }
    require(rejection.status == 0);
    require_inside(request->method_name, head, length);
    require(is_token_text(request->method_name));
    require(request->method == method_named(request->method_name));
    require_target(request, head, length);
    require_inside(request->version, head, length);
    require(strlen(request->version) == 8 &&
            strncmp(request->version, "HTTP/1.", 7) == 0 &&
            is_digit(request->version[7]));
    require(is_http_1_0(request) == (strcmp(request->version, "HTTP/1.0") == 0));
    require_fields(request, head, length);
}

/* ==== Finding the head ==== */

/* The server reads into a buffer of HEAD_MAX bytes until find_head_end()
   finds an end; each read(2) may bring any number of bytes. */
static size_t find_head_end_in_pieces(const char *bytes, size_t length, size_t piece)
{
    size_t received = 0;
    size_t scanned = 0;

    while (received < length) {
        received += piece < length - received ? piece : length - received;
        size_t end = find_head_end(bytes, received, scanned);
        if (end != 0)
            return end;
        scanned = received;
    }
    return 0;
}

/* A head found ends in an empty line (LF LF, or LF CR LF), after the empty
   lines skipped before it, and is the first end: one byte fewer has none. */
static void require_head_end(const char *bytes, size_t head_length)
{
    size_t skipped = skip_empty_lines(bytes, head_length);
    require(skipped % 2 == 0 && skipped <= 2 * EMPTY_LINES_MAX);
    for (size_t i = 0; i < skipped; i += 2)
        require(bytes[i] == '\r' && bytes[i + 1] == '\n');
    require(head_length >= skipped + 2);
    require(bytes[head_length - 1] == '\n');
    require(bytes[head_length - 2] == '\n' ||
            (head_length >= skipped + 3 && bytes[head_length - 2] == '\r' &&
             bytes[head_length - 3] == '\n'));
    require(find_head_end(bytes, head_length - 1, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* Exactly the bytes received, so that reading one more is caught. */
    size_t length = size < HEAD_MAX ? size : HEAD_MAX;
    char *bytes = malloc(length);
    require(bytes != NULL);
    memcpy(bytes, data, length);

    size_t head_length = find_head_end(bytes, length, 0);
    require(head_length <= length);
    require(find_head_end_in_pieces(bytes, length, 1) == head_length);
    size_t piece = (size_t)(unsigned char)bytes[length - 1] % 16 + 2;
    require(find_head_end_in_pieces(bytes, length, piece) == head_length);
    if (head_length != 0)
        require_head_end(bytes, head_length);
    free(bytes);
    if (head_length == 0)
        return 0; /* the server would read more, or answer 414 or 431 */

    char *head = malloc(head_length);
    require(head != NULL);
    memcpy(head, data, head_length);
    struct request request = {.head_length = head_length};
    struct rejection rejection = parse_head(head, head_length, &request);
    require_parsed(rejection, &request, head, head_length);
    require(request.head_length == head_length);
    free(head);
    return 0;
}
