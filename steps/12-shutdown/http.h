/*
 * http.h: the request parser, from step 05 on.
 *
 * What server.c may use of http.c: the limits on what a client may send,
 * a parsed request, the verdict on a bad one, and the functions that find
 * a request's head in the bytes received and parse it. The parser never
 * reads a socket and never allocates: it works on bytes that server.c has
 * received, and only says what they hold.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* What a client may send, at most. A request over a limit is answered
   with an error, never given a bigger buffer. */
enum {
    HEAD_MAX = 8192, /* request line and header fields */
    EMPTY_LINES_MAX = 8, /* CR LF before the request line, skipped */
    TARGET_MAX = 2048, /* longer request-target: 414 */
    FIELD_LINE_MAX = 4096, /* one header field line */
    FIELDS_MAX = 32, /* header field lines */
    BODY_MAX = 64 * 1024, /* larger body: 413 */
};

/* A header field line, split at its colon. */
struct field {
    const char *name;
    const char *value;
};

/* The methods of RFC 9110 (section 9) and RFC 5789 (PATCH), parsed once
   into a number, so that the server compares numbers, not strings. Any
   other method, and a request whose line was never parsed, is
   METHOD_UNKNOWN. */
enum method {
    METHOD_UNKNOWN,
    METHOD_GET,
    METHOD_HEAD,
    METHOD_POST,
    METHOD_PUT,
    METHOD_DELETE,
    METHOD_CONNECT,
    METHOD_OPTIONS,
    METHOD_TRACE,
    METHOD_PATCH,
};

/* A parsed request. The strings point into the bytes that were received,
   except path for a target in absolute-form: it is built in origin_form. */
struct request {
    size_t head_length; /* empty lines skipped, request line, fields, empty line */
    enum method method;
    const char *method_name; /* as sent, for the log */
    const char *target; /* as sent */
    const char *path; /* what the target asks for: path and query, or "*" */
    const char *version;
    struct field fields[FIELDS_MAX];
    size_t field_count;
    size_t host_count;
    const char *host; /* the Host field's value, if sent */
    const char *content_length; /* the field's value, if sent */
    const char *transfer_encoding; /* the same */
    unsigned long body_length;
    const char *body;
    char origin_form[TARGET_MAX + 1];
};

/* Why a request was turned down: the status code a server answers with
   (RFC 9110, section 15), or NO_RESPONSE when the client is gone, and a
   reason for the log. A request that is fine has no reason. */
enum { NO_RESPONSE = 0 };

struct rejection {
    int status;
    const char *reason;
};

/* A request that is fine: no status, no reason. Defined in http.c: the
   one object that every file including this header shares. */
extern const struct rejection NOT_REJECTED;

/* A rejection with this status and reason, and whether a verdict is one. */
struct rejection reject(int status, const char *reason);
bool rejected(struct rejection rejection);

/* Reads a decimal number no larger than max; false if text is not one. */
bool parse_number(const char *text, unsigned long max, unsigned long *value);

/* The bytes that empty lines (CR LF) take before the request line. */
size_t skip_empty_lines(const char *bytes, size_t length);

/* The length of the head at the start of bytes, or 0 while its end has
   not arrived: then receive more, and call again with from set to the
   length of this call, so that only the new bytes are searched. */
size_t find_head_end(const char *bytes, size_t length, size_t from);

/* Parses a complete head, as found by find_head_end, in place: the
   strings of request point into head. The request must start zeroed,
   = {0}: the fields are counted into it. */
struct rejection parse_head(char *head, size_t length, struct request *request);

/* Is it an HTTP/1.0 request? Those may leave out Host, have no chunked
   bodies, and close the connection unless asked not to. */
bool is_http_1_0(const struct request *request);

#endif
