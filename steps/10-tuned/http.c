/*
 * http.c: the request parser, from step 05 on.
 *
 * Finds the end of a request's head in the bytes received so far, and
 * parses the head in place: the request line, the target in its three
 * forms, the header fields, and what they say of the body. http.h says
 * what the rest of the server may call; everything else here is static,
 * seen by this file alone.
 */
#define _POSIX_C_SOURCE 200809L /* strncasecmp(3), inet_pton(3) */

#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ==== Verdicts ==== */

const struct rejection NOT_REJECTED = {0, NULL};

struct rejection reject(int status, const char *reason)
{
    return (struct rejection){.status = status, .reason = reason};
}

bool rejected(struct rejection rejection)
{
    return rejection.reason != NULL;
}

/* ==== Numbers ==== */

static bool is_decimal(const char *text)
{
    return text[0] != '\0' && text[strspn(text, "0123456789")] == '\0';
}

/* Reads a decimal number no larger than max; false if text is not one. */
bool parse_number(const char *text, unsigned long max, unsigned long *value)
{
    if (!is_decimal(text))
        return false;
    unsigned long result = 0;
    for (const char *c = text; *c != '\0'; c++) {
        unsigned long digit = (unsigned long)(*c - '0');
        if (digit > max || result > (max - digit) / 10)
            return false;
        result = result * 10 + digit;
    }
    *value = result;
    return true;
}

/* ==== Finding the head ==== */

/* RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
   (CR LF) before the request line, which some clients send after a body.
   We skip EMPTY_LINES_MAX at most, so that a client cannot keep us busy
   with them. Returns how many bytes they take. */
size_t skip_empty_lines(const char *bytes, size_t length)
{
    size_t skipped = 0;

    for (int line = 0; line < EMPTY_LINES_MAX; line++) {
        if (length - skipped < 2 || memcmp(bytes + skipped, "\r\n", 2) != 0)
            break;
        skipped += 2;
    }
    return skipped;
}

/* The head ends at the first empty line after the request line: CR LF
   CR LF. We stop at LF LF as well, so that a request with bare LFs is
   rejected by the parser at once rather than waited on. Scans from `from`
   (what is new, and the two bytes before it), but never the empty lines
   that come first. Returns the head's length, or 0 if its end has not
   arrived yet. */
size_t find_head_end(const char *bytes, size_t length, size_t from)
{
    size_t start = skip_empty_lines(bytes, length);

    for (size_t i = from < start + 2 ? start : from - 2; i < length; i++) {
        if (bytes[i] != '\n')
            continue;
        if (i + 1 < length && bytes[i + 1] == '\n')
            return i + 2;
        if (i + 2 < length && bytes[i + 1] == '\r' && bytes[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* ==== Parsing the head ==== */

/* tchar, RFC 9110 section 5.6.2: what methods and field names are made of. */
static bool is_token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static size_t token_length(const char *text)
{
    size_t length = 0;
    while (is_token_char((unsigned char)text[length]))
        length++;
    return length;
}

static bool is_token(const char *text)
{
    size_t length = token_length(text);
    return length > 0 && text[length] == '\0';
}

/* Visible ASCII, no spaces: what a request-target may hold. */
static bool is_visible(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++)
        if (*c <= ' ' || *c >= 0x7f)
            return false;
    return true;
}

/* A field value may hold anything but control characters, except tab. */
static bool is_field_value(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++)
        if ((*c < ' ' && *c != '\t') || *c == 0x7f)
            return false;
    return true;
}

/* "HTTP/" DIGIT "." DIGIT, RFC 9112 section 2.3. */
static bool is_http_version(const char *text)
{
    return strlen(text) == 8 && strncmp(text, "HTTP/", 5) == 0 && text[5] >= '0' &&
           text[5] <= '9' && text[6] == '.' && text[7] >= '0' && text[7] <= '9';
}

/* Cuts the next line out of the head and ends it with a NUL in place of
   its CR, so that the parser can use it as a C string. */
static struct rejection next_line(char **cursor, const char *end, char **line)
{
    char *lf = memchr(*cursor, '\n', (size_t)(end - *cursor));
    if (lf == NULL)
        return reject(400, "incomplete line");
    if (lf == *cursor || lf[-1] != '\r')
        return reject(400, "line ends in a bare LF, not CR LF");
    if (memchr(*cursor, '\0', (size_t)(lf - *cursor)) != NULL)
        return reject(400, "NUL byte in the head");
    lf[-1] = '\0';
    *line = *cursor;
    *cursor = lf + 1;
    return NOT_REJECTED;
}

/* Is c one of the characters in set? (strchr(3) finds the NUL too.) */
static bool is_one_of(unsigned char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/* reg-name, RFC 3986 section 3.2.2: a host name or an IPv4 address, made
   of unreserved characters and sub-delims, or %XX escapes. It may be empty. */
static const char REG_NAME_CHARACTERS[] = "abcdefghijklmnopqrstuvwxyz"
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-._~!$&'()*+,;=";
static const char HEX_DIGITS[] = "0123456789abcdefABCDEF";

static bool is_reg_name(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (text[i] == '%' && length - i > 2 &&
            is_one_of((unsigned char)text[i + 1], HEX_DIGITS) &&
            is_one_of((unsigned char)text[i + 2], HEX_DIGITS))
            i += 2;
        else if (!is_one_of((unsigned char)text[i], REG_NAME_CHARACTERS))
            return false;
    }
    return true;
}

/* IP-literal, RFC 3986 section 3.2.2: an IPv6 address in brackets, which
   inet_pton(3) checks for us. (The other kind, IPvFuture, has never been
   used: we refuse it.) */
static bool is_ip_literal(const char *text, size_t length)
{
    char address[INET6_ADDRSTRLEN];
    struct in6_addr ignored;

    if (length < 2 || text[0] != '[' || text[length - 1] != ']' ||
        length - 2 >= sizeof address)
        return false;
    memcpy(address, text + 1, length - 2);
    address[length - 2] = '\0';
    return inet_pton(AF_INET6, address, &ignored) == 1;
}

/* What may follow a host: nothing, or ":" and a port of digits, maybe none
   (RFC 3986 section 3.2.3). */
static bool is_port_part(const char *text, const char *end)
{
    if (text == end)
        return true;
    if (*text != ':')
        return false;
    while (++text < end)
        if (!is_one_of((unsigned char)*text, "0123456789"))
            return false;
    return true;
}

/* uri-host [ ":" port ], RFC 9110 section 7.2: what Host holds, and what an
   absolute-form target names after "//". Only an IPv6 address, in its
   brackets, has colons of its own. */
static bool is_host_and_port(const char *text, size_t length)
{
    const char *end = text + length;

    if (length > 0 && text[0] == '[') {
        const char *bracket = memchr(text, ']', length);
        return bracket != NULL && is_ip_literal(text, (size_t)(bracket + 1 - text)) &&
               is_port_part(bracket + 1, end);
    }
    const char *colon = memchr(text, ':', length);
    if (colon == NULL)
        colon = end;
    return is_reg_name(text, (size_t)(colon - text)) && is_port_part(colon, end);
}

/* "http://" or "https://", in any case (RFC 3986 section 3.1): its length,
   or 0 if the target starts with neither. */
static size_t http_scheme_length(const char *target)
{
    if (strncasecmp(target, "http://", strlen("http://")) == 0)
        return strlen("http://");
    if (strncasecmp(target, "https://", strlen("https://")) == 0)
        return strlen("https://");
    return 0;
}

/* absolute-form, RFC 9112 section 3.2.2: "http://host:port/path?query".
   Clients send it to proxies, and a server MUST accept it too. An http URI
   must name a host (RFC 9110 section 4.2.1), and that host, not the Host
   field, names the site asked for. The path is what follows the host, or
   "/" if nothing does: we build it in origin_form, as a client would have
   sent it to us, and leave the target as it came, for the log. */
static struct rejection parse_absolute_form(struct request *request)
{
    size_t scheme_length = http_scheme_length(request->target);
    if (scheme_length == 0)
        return reject(400, "invalid request target");

    const char *authority = request->target + scheme_length;
    size_t authority_length = strcspn(authority, "/?");
    if (authority_length == 0 || authority[0] == ':' ||
        !is_host_and_port(authority, authority_length))
        return reject(400, "invalid host in the request target");

    const char *rest = authority + authority_length;
    snprintf(request->origin_form, sizeof request->origin_form, "%s%s",
             rest[0] == '/' ? "" : "/", rest);
    request->path = request->origin_form;
    return NOT_REJECTED;
}

/* The request-target takes one of four forms, RFC 9112 section 3.2. We
   take three: origin-form ("/path?query", what clients send to servers),
   absolute-form, and asterisk-form ("*", the server as a whole), which is
   for OPTIONS only. The fourth, authority-form, is for CONNECT, which
   asks a proxy for a tunnel: we are none, so it is a bad request. */
static struct rejection parse_target(struct request *request)
{
    bool is_asterisk = strcmp(request->target, "*") == 0;

    if (is_asterisk && request->method != METHOD_OPTIONS)
        return reject(400, "the target * is for OPTIONS only");
    if (request->target[0] != '/' && !is_asterisk)
        return parse_absolute_form(request);
    request->path = request->target;
    return NOT_REJECTED;
}

/* A method's number. Methods are case-sensitive (RFC 9110 section 9.1):
   "get" is a method we do not know, not GET. A method added to the enum
   but not to names[] is a NULL there: skipped, never compared. */
static enum method parse_method(const char *name)
{
    static const char *const names[] = {
        [METHOD_GET] = "GET",         [METHOD_HEAD] = "HEAD",
        [METHOD_POST] = "POST",       [METHOD_PUT] = "PUT",
        [METHOD_DELETE] = "DELETE",   [METHOD_CONNECT] = "CONNECT",
        [METHOD_OPTIONS] = "OPTIONS", [METHOD_TRACE] = "TRACE",
        [METHOD_PATCH] = "PATCH",
    };
    for (size_t method = METHOD_UNKNOWN + 1; method < sizeof names / sizeof names[0];
         method++)
        if (names[method] != NULL && strcmp(name, names[method]) == 0)
            return (enum method)method;
    return METHOD_UNKNOWN;
}

/* method SP request-target SP HTTP-version, RFC 9112 section 3. */
static struct rejection parse_request_line(char *line, struct request *request)
{
    char *target = strchr(line, ' ');
    char *version = target == NULL ? NULL : strchr(target + 1, ' ');
    if (version == NULL || strchr(version + 1, ' ') != NULL)
        return reject(400, "request line is not METHOD TARGET VERSION");
    *target++ = '\0';
    *version++ = '\0';

    if (!is_token(line))
        return reject(400, "invalid method");
    request->method_name = line;
    request->method = parse_method(line);
    if (strlen(target) > TARGET_MAX)
        return reject(414, "request target too long");
    if (!is_visible(target))
        return reject(400, "invalid request target");
    request->target = target;
    if (!is_http_version(version))
        return reject(400, "invalid HTTP version");
    /* HTTP/1.2 would be read as 1.1, RFC 9110 section 2.5: only another
       major version is one we do not speak. */
    if (version[5] != '1')
        return reject(505, "unsupported HTTP version");
    request->version = version;
    return parse_target(request);
}

static char *skip_spaces(char *text)
{
    return text + strspn(text, " \t");
}

static void trim_trailing_spaces(char *text)
{
    size_t length = strlen(text);
    while (length > 0 && (text[length - 1] == ' ' || text[length - 1] == '\t'))
        text[--length] = '\0';
}

/* field-name ":" OWS field-value OWS, RFC 9112 section 5. */
static struct rejection parse_field_line(char *line, struct request *request)
{
    if (strlen(line) > FIELD_LINE_MAX)
        return reject(431, "header field line too long");
    if (line[0] == ' ' || line[0] == '\t')
        return reject(400, "obsolete line folding");
    size_t name_length = token_length(line);
    if (name_length == 0 || line[name_length] != ':')
        return reject(400, "malformed header field name");
    if (request->field_count == FIELDS_MAX)
        return reject(431, "too many header fields");

    line[name_length] = '\0';
    char *value = skip_spaces(line + name_length + 1);
    trim_trailing_spaces(value);
    if (!is_field_value(value))
        return reject(400, "control character in a header field value");
    request->fields[request->field_count++] =
        (struct field){.name = line, .value = value};

    if (strcasecmp(line, "Host") == 0) {
        request->host_count++;
        request->host = value;
    }
    if (strcasecmp(line, "Content-Length") == 0) {
        if (request->content_length != NULL)
            return reject(400, "more than one Content-Length");
        request->content_length = value;
    }
    if (strcasecmp(line, "Transfer-Encoding") == 0)
        request->transfer_encoding = value;
    return NOT_REJECTED;
}

bool is_http_1_0(const struct request *request)
{
    return strcmp(request->version, "HTTP/1.0") == 0;
}

/* Is chunked the last of the transfer codings, a list such as "gzip,
   chunked"? Empty list elements do not count, RFC 9110 section 5.6.1. */
static bool ends_with_chunked(const char *codings)
{
    size_t end = strlen(codings);
    while (end > 0 && is_one_of((unsigned char)codings[end - 1], ", \t"))
        end--;
    size_t start = end;
    while (start > 0 && !is_one_of((unsigned char)codings[start - 1], ", \t"))
        start--;
    return end - start == strlen("chunked") &&
           strncasecmp(codings + start, "chunked", end - start) == 0;
}

/* Transfer-Encoding, RFC 9112 section 6: the body comes in chunks, which
   we do not read (yet): 501. Where even its end is unclear, 400. */
static struct rejection check_transfer_encoding(const struct request *request)
{
    if (is_http_1_0(request)) /* section 6.1: HTTP/1.0 has no chunks */
        return reject(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (request->content_length != NULL) /* section 6.3, rule 3 */
        return reject(400, "both Transfer-Encoding and Content-Length");
    if (!ends_with_chunked(request->transfer_encoding)) /* rule 4 */
        return reject(400, "chunked is not the last transfer coding");
    return reject(501, "Transfer-Encoding is not supported");
}

/* What the fields say about the message as a whole, RFC 9112 sections 3.2
   and 6: whom it is for, and how long its body is. */
static struct rejection check_fields(struct request *request)
{
    if (request->host_count > 1 || (request->host_count == 0 && !is_http_1_0(request)))
        return reject(400, "HTTP/1.1 needs exactly one Host");
    if (request->host != NULL &&
        !is_host_and_port(request->host, strlen(request->host)))
        return reject(400, "invalid Host");
    if (request->transfer_encoding != NULL)
        return check_transfer_encoding(request);
    if (request->content_length != NULL && !is_decimal(request->content_length))
        return reject(400, "invalid Content-Length");
    if (request->content_length != NULL &&
        !parse_number(request->content_length, BODY_MAX, &request->body_length))
        return reject(413, "body too large");
    return NOT_REJECTED;
}

/* Parses a complete head, as found by find_head_end, in place. */
struct rejection parse_head(char *head, size_t length, struct request *request)
{
    char *cursor = head + skip_empty_lines(head, length);
    char *end = head + length;
    char *line;

    struct rejection rejection = next_line(&cursor, end, &line);
    if (!rejected(rejection))
        rejection = parse_request_line(line, request);
    while (!rejected(rejection)) {
        rejection = next_line(&cursor, end, &line);
        if (rejected(rejection))
            break;
        if (line[0] == '\0') /* the empty line that ends the head */
            return check_fields(request);
        rejection = parse_field_line(line, request);
    }
    return rejection;
}
