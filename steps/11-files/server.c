/*
 * Step 11: serving files.
 *
 * GET and HEAD now answer with the files of a directory, ROOT. The
 * kernel keeps every path inside it: each file is opened relative to a
 * descriptor of ROOT with openat2(2) and RESOLVE_BENEATH, so that no
 * spelling of ".." and no symbolic link can reach a file outside, and
 * only regular files are served. The file goes to the socket with
 * sendfile(2), without passing through our memory, a piece at a time
 * inside step 09's event loop, so that a large file to a slow reader
 * holds up nobody. The head says what a browser needs: Content-Type,
 * Content-Length, Last-Modified, and 304 when its copy is current.
 *
 * Needs Linux 5.6 or later (openat2).
 * Build and run:  make step-11 && ./step11 [PORT [ADDRESS [ROOT]]]
 */
#define _GNU_SOURCE /* accept4(2), strptime(3), timegm(3) */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

/* Every number the server depends on, named once, grouped by concern. */
enum {
    /* The command line and the socket */
    DEFAULT_PORT = 8080,
    PORT_MAX = 65535,
    EXIT_USAGE = 2,
    ENDPOINT_TEXT_MAX = INET_ADDRSTRLEN + sizeof ":65535",
    LISTEN_BACKLOG = 511, /* connections the kernel queues for us: nginx's number */
    /* How long we wait */
    REQUEST_TIMEOUT_SECONDS = 5, /* to send a whole request */
    RESPONSE_TIMEOUT_SECONDS = 5, /* to take a response we could not send at once */
    KEEPALIVE_TIMEOUT_SECONDS = 2, /* to start the next request */
    LINGER_SECONDS = 2, /* to wait for the client to close */
    ACCEPT_PAUSE_MILLISECONDS = 100, /* out of descriptors: try again after */
    LOG_FLUSH_MILLISECONDS = 10, /* quiet for that long: the log is written */
    /* Responses */
    RESPONSE_BODY_MAX = 256,
    FILE_FIELDS_MAX = TARGET_MAX + sizeof "Location: /\r\n", /* or Last-Modified */
    RESPONSE_MAX = 1024 + FILE_FIELDS_MAX, /* status line, header fields and body */
    DATE_MAX = sizeof "Sun, 06 Nov 1994 08:49:37 GMT",
    /* Connections */
    KEEPALIVE_REQUESTS_MAX = 1000, /* on one connection, then we close: nginx's */
    DISCARD_BUFFER_SIZE = 512, /* bytes read at a time while we wait */
    CONNECTIONS_MAX = 16384, /* open at once; at the limit we stop accepting */
    EVENTS_MAX = 64, /* events taken from epoll_wait(2) at a time */
    FREE_BUFFERS_MAX = 64, /* buffers kept for later; more are freed */
    /* The log */
    LOG_BUFFER_SIZE = 64 * 1024, /* the log is written that much at a time */
    /* Files */
    FILE_CHUNK_MAX = 2 * 1024 * 1024, /* bytes sendfile(2) sends in one turn */
    OPEN_TRIES_MAX = 3, /* openat2(2) calls for one file, when it says EAGAIN */
};
#define DEFAULT_ADDRESS "127.0.0.1"
/* The example site, relative to the top of the repository, where the
   README runs the server: from elsewhere, name a ROOT. Not ".": that
   would serve the whole repository, .git and all, to anyone who asks. */
#define DEFAULT_ROOT "steps/11-files/site"

/* ==== The command line and the log ==== */

/* A system call failed: say which one, and why. The log is written out
   first: buffered, it would otherwise be cut by this line in the middle
   of one of its own when both go to one file. */
static void warn(const char *call)
{
    int error = errno; /* fflush(3) may change it */

    (void)fflush(stdout); /* if the log fails too, this line still goes out */
    fprintf(stderr, "%s: %s\n", call, strerror(error));
}

/* ...and we cannot go on without it. */
static _Noreturn void die(const char *call)
{
    warn(call);
    exit(EXIT_FAILURE);
}

static _Noreturn void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [PORT [ADDRESS [ROOT]]]\n"
            "  PORT     TCP port, 0 to let the kernel pick one (default %d)\n"
            "  ADDRESS  IPv4 address to listen on, 0.0.0.0 for all (default %s)\n"
            "  ROOT     the directory whose files are served (default %s)\n",
            program, DEFAULT_PORT, DEFAULT_ADDRESS, DEFAULT_ROOT);
    exit(EXIT_USAGE);
}

/* The command line of every step, [PORT [ADDRESS]], and now [ROOT]. */
static struct sockaddr_in parse_arguments(int argc, char *argv[], const char **root)
{
    const char *program = argc > 0 ? argv[0] : "server";
    unsigned long port = DEFAULT_PORT;
    const char *host = argc > 2 ? argv[2] : DEFAULT_ADDRESS;
    struct sockaddr_in address = {.sin_family = AF_INET};

    *root = argc > 3 ? argv[3] : DEFAULT_ROOT;
    if (argc > 4 || (argc > 1 && !parse_number(argv[1], PORT_MAX, &port)) ||
        inet_pton(AF_INET, host, &address.sin_addr) != 1)
        usage(program);
    address.sin_port = htons((in_port_t)port);
    return address;
}

/* Writes an address as people read it: "127.0.0.1:8080". */
static void format_endpoint(const struct sockaddr_in *address,
                            char text[ENDPOINT_TEXT_MAX])
{
    char host[INET_ADDRSTRLEN];

    if (inet_ntop(AF_INET, &address->sin_addr, host, sizeof host) == NULL)
        die("inet_ntop");
    snprintf(text, ENDPOINT_TEXT_MAX, "%s:%u", host,
             (unsigned)ntohs(address->sin_port));
}

/* stdout is fully buffered when it is not a terminal: a pipe, a file.
   Flush before we block, so that what we printed can be read now. */
static void flush_log(void)
{
    if (fflush(stdout) == EOF)
        die("fflush");
}

/* Only one process writes stdout: no line of another process can cut
   ours. stdio's buffer for a file or a pipe is 4 KiB, a write(2) every
   few dozen requests; with LOG_BUFFER_SIZE, one every few hundred. */
static void buffer_log(void)
{
    static char buffer[LOG_BUFFER_SIZE];

    if (setvbuf(stdout, buffer, _IOFBF, sizeof buffer) != 0)
        die("setvbuf");
}

/* ==== The socket ==== */

/* socket(2): a TCP endpoint over IPv4. SOCK_CLOEXEC closes it in any
   program we might exec(3), so descriptors never leak into children.
   SOCK_NONBLOCK: accept(2) fails with EAGAIN rather than wait when no
   connection is queued (a client may give up between epoll's word and
   our accept). */
static int create_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    printf("created socket fd %d in process %ld\n", fd, (long)getpid());
    return fd;
}

/* bind(2) gives the socket its address. SO_REUSEADDR (socket(7)) lets us
   bind a port that a previous run left in TIME_WAIT, so that you can stop
   and restart the server at once. */
static void bind_socket(int fd, const struct sockaddr_in *address)
{
    int on = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt SO_REUSEADDR");
    if (bind(fd, (const struct sockaddr *)address, sizeof *address) < 0) {
        char text[ENDPOINT_TEXT_MAX];
        format_endpoint(address, text);
        fprintf(stderr, "bind %s: %s\n", text, strerror(errno));
        exit(EXIT_FAILURE);
    }
}

/* getsockname(2) tells which address we got: with port 0, the kernel
   picked a free port, and this is the only way to learn it. */
static struct sockaddr_in bound_address(int fd)
{
    struct sockaddr_in address;
    socklen_t length = sizeof address;

    if (getsockname(fd, (struct sockaddr *)&address, &length) < 0)
        die("getsockname");
    return address;
}

/* listen(2) turns the socket into one that accepts connections: from now
   on the kernel completes TCP handshakes and queues the connections. */
static void start_listening(int fd)
{
    if (listen(fd, LISTEN_BACKLOG) < 0)
        die("listen");
}

/* ==== Connections ==== */

/* accept(2) takes the next connection from the queue and gives it a
   descriptor of its own. accept4 sets close-on-exec at once, as socket(2)
   did for the listening socket, and makes the connection non-blocking:
   a read(2) or write(2) that would wait fails with EAGAIN instead.
   Returns -1 when the queue is empty (EAGAIN) or we are out of
   descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): errno says
   which. */
static int accept_connection(int listener, struct sockaddr_in *peer)
{
    for (;;) {
        socklen_t length = sizeof *peer;
        int fd = accept4(listener, (struct sockaddr *)peer, &length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EMFILE ||
            errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            return fd;
        if (errno == EBADF || errno == EFAULT || errno == EINVAL || errno == ENOTSOCK)
            die("accept4");
        /* Any other error belongs to one connection (the client gave up,
           the network failed): log it and take the next one. EINTR just
           means a signal came first. */
        if (errno != EINTR)
            warn("accept4");
    }
}

/* close(2) frees the descriptor even when it reports an error, so it is
   never retried, not even after EINTR. The same for a connection and for
   a file. */
static void close_descriptor(int fd)
{
    if (close(fd) < 0)
        warn("close");
}

/* ==== Reading a request ==== */

/* What a client has sent so far: the head, then the body. */
struct received {
    char bytes[HEAD_MAX + BODY_MAX];
    size_t length;
    size_t scanned; /* bytes already searched for the end of the head */
};

/* The units of now_microseconds()'s clock. */
enum time_units {
    NANOSECONDS_PER_MICROSECOND = 1000,
    MICROSECONDS_PER_MILLISECOND = 1000,
    MICROSECONDS_PER_SECOND = 1000 * 1000,
};

static long long now_microseconds(void)
{
    struct timespec now;

    if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
        die("clock_gettime");
    return (long long)now.tv_sec * MICROSECONDS_PER_SECOND +
           now.tv_nsec / NANOSECONDS_PER_MICROSECOND;
}

/* The deadline `seconds` from now, on now_microseconds()'s clock. */
static long long deadline_in(int seconds)
{
    return now_microseconds() + (long long)seconds * MICROSECONDS_PER_SECOND;
}

/* read(2) on a non-blocking socket: it takes what has arrived, or fails
   with EAGAIN at once if nothing has. The deadlines are kept by the event
   loop (expire_connections), no longer by the socket. */
static ssize_t receive(int fd, char *buffer, size_t size)
{
    ssize_t count;

    do
        count = read(fd, buffer, size);
    while (count < 0 && errno == EINTR);
    return count;
}

/* Reads whatever has arrived, without going past `limit` bytes in all. */
static struct rejection receive_more(int fd, struct received *received, size_t limit)
{
    ssize_t count =
        receive(fd, received->bytes + received->length, limit - received->length);
    if (count > 0) {
        received->length += (size_t)count;
        return NOT_REJECTED;
    }
    if (count == 0 && received->length == 0)
        return reject(NO_RESPONSE, "closed without sending a request");
    if (count == 0)
        return reject(400, "closed before the end of the request");
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return NOT_REJECTED; /* nothing after all: epoll will tell us again */
    return reject(NO_RESPONSE, strerror(errno));
}

/* Has the whole head arrived? It may come all at once, a byte at a time,
   or with part of the body. Sets request->head_length when it has. */
static struct rejection find_head(struct received *received, struct request *request)
{
    request->head_length =
        find_head_end(received->bytes, received->length, received->scanned);
    received->scanned = received->length;
    if (request->head_length == 0 && received->length == HEAD_MAX) {
        /* RFC 9112, section 3: a request line too long to read is 414. */
        size_t start = skip_empty_lines(received->bytes, received->length);
        if (memchr(received->bytes + start, '\n', received->length - start) == NULL)
            return reject(414, "request line too long");
        return reject(431, "request head too large");
    }
    return NOT_REJECTED;
}

/* ==== The body, and the whole request ==== */

/* Has the whole Content-Length body arrived? Part of it, or all of it,
   may have come with the head. Sets request->body when it has. */
static void find_body(const struct received *received, struct request *request)
{
    if (received->length >= request->head_length + request->body_length)
        request->body = received->bytes + request->head_length;
}

/* Is a whole request in what has arrived? We look again each time bytes
   come: the head is parsed once, when its end is there, and the request
   is complete when its body is there too (request->body is set). */
static struct rejection find_request(struct received *received, struct request *request)
{
    if (request->head_length == 0) {
        struct rejection rejection = find_head(received, request);
        if (rejected(rejection) || request->head_length == 0)
            return rejection;
        rejection = parse_head(received->bytes, request->head_length, request);
        if (rejected(rejection))
            return rejection;
    }
    find_body(received, request);
    return NOT_REJECTED;
}

/* How far a read may fill the buffer: the head may take HEAD_MAX bytes,
   and once it is parsed, we read no further than the end of the body. */
static size_t read_limit(const struct request *request)
{
    if (request->head_length == 0)
        return HEAD_MAX;
    return request->head_length + request->body_length;
}

static void print_request(const struct request *request)
{
    printf("request: %s %s %s\n", request->method_name, request->target,
           request->version);
    for (size_t i = 0; i < request->field_count; i++)
        printf("header: %s: %s\n", request->fields[i].name, request->fields[i].value);
    printf("body: %lu bytes\n", request->body_length);
}

static void print_rejection(struct rejection rejection)
{
    if (rejection.status == NO_RESPONSE)
        printf("dropped: %s\n", rejection.reason);
    else
        printf("rejected with %d: %s\n", rejection.status, rejection.reason);
}

/* ==== Answering ==== */

/* What we send back. The body is text, so it can be built with snprintf,
   or, with has_file, a file: file_size bytes of the descriptor `file`,
   unless that is -1 (HEAD, 304). Unless keep_alive is set, the server
   closes the connection after it. */
struct response {
    int status;
    const char *content_type;
    char body[RESPONSE_BODY_MAX];
    bool keep_alive;
    bool has_file;
    int file;
    off_t file_size; /* its Content-Length */
    time_t modified; /* its Last-Modified */
    const char *location; /* a 301's: the path, to end in "/" */
    int location_length;
};

/* A response on its way out: its bytes, how many the socket took, and the
   file that follows them, if any (-1 if none), sent up to file_offset. */
struct outgoing {
    char bytes[RESPONSE_MAX];
    size_t length;
    size_t sent;
    int status;
    bool keep_alive;
    int file;
    off_t file_offset;
    off_t file_size;
    int in_socket; /* bytes the socket held when the deadline started */
};

static const char INDEX_FILE[] = "index.html"; /* what a directory serves */
/* The methods we serve, RFC 9110 section 10.2.1: sent with 405 (section
   15.5.6), and as the answer to OPTIONS (section 9.3.7). */
static const char ALLOW_FIELD[] = "Allow: GET, HEAD, POST, OPTIONS\r\n";

/* RFC 9110, section 15. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return ""; /* the reason phrase is optional, RFC 9112 section 4 */
    }
}

static struct response error_response(int status, const char *reason)
{
    struct response response = {.status = status,
                                .content_type = "text/plain; charset=utf-8"};
    snprintf(response.body, sizeof response.body, "%d %s: %s\n", status,
             reason_phrase(status), reason);
    return response;
}

/* ==== Serving files ==== */

/* Content-Type, RFC 9110 section 8.3, by the end of the file's name: a
   browser shows text/html as a page, and uses a style sheet or a script
   only if it comes as text/css or text/javascript. Anything else is
   application/octet-stream: bytes, which a browser offers to save. */
static const struct media_type {
    const char *extension;
    const char *type;
} MEDIA_TYPES[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"txt", "text/plain; charset=utf-8"},
    {"json", "application/json"},
    {"pdf", "application/pdf"},
    {"epub", "application/epub+zip"},
    {"wasm", "application/wasm"},
};
static const char DEFAULT_MEDIA_TYPE[] = "application/octet-stream";

static const char *media_type(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot == NULL || strchr(dot, '/') != NULL)
        return DEFAULT_MEDIA_TYPE;
    for (size_t i = 0; i < sizeof MEDIA_TYPES / sizeof MEDIA_TYPES[0]; i++)
        if (strcasecmp(dot + 1, MEDIA_TYPES[i].extension) == 0)
            return MEDIA_TYPES[i].type;
    return DEFAULT_MEDIA_TYPE;
}

static unsigned hex_digit_value(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* Percent-encoding, RFC 3986 section 2.1: "%20" is the byte 0x20, a space.
   Writes the path without its query (after "?", which we ignore) into
   name, decoded once: "%252e" is "%2e", a name like any other, never ".".
   Refused: "%" without two hex digits (400); "%00" (400, as nginx does),
   since a NUL would end the name early in every C string after this one;
   "%2F" (404, as Apache does), a slash inside one segment's name, which
   no file can have, and which would otherwise split it into two. */
static struct rejection decode_path(const char *path, char *name, size_t size)
{
    size_t length = 0;

    if (path[0] != '/') /* origin-form, or built as one from absolute-form */
        return reject(400, "the path does not start with /");
    for (const char *c = path; *c != '\0' && *c != '?'; c++) {
        char byte = *c;
        if (byte == '%') {
            if (!isxdigit((unsigned char)c[1]) || !isxdigit((unsigned char)c[2]))
                return reject(400, "% without two hex digits in the path");
            byte = (char)(hex_digit_value(c[1]) * 16 + hex_digit_value(c[2]));
            c += 2;
            if (byte == '\0')
                return reject(400, "%00 in the path");
            if (byte == '/')
                return reject(404, "%2F in the path");
        }
        if (length + 1 == size)
            return reject(414, "path too long");
        name[length++] = byte;
    }
    name[length] = '\0';
    return NOT_REJECTED;
}

/* openat2(2), Linux 5.6, for which glibc 2.36 has no wrapper: opens name
   relative to the directory root, and the kernel checks each step of the
   path as it walks it. RESOLVE_BENEATH: no step may leave root, so ".."
   above it, an absolute path, and a symbolic link to anywhere outside all
   fail (EXDEV), whatever spelling our string checks missed.
   RESOLVE_NO_MAGICLINKS: no "magic links", those of /proc/PID/fd and the
   like, which lead to a file, not a path. RESOLVE_BENEATH refuses them
   today, but its man page asks us to say so: that may change.
   O_NONBLOCK: opening a FIFO would wait for a writer, and stop the loop
   (only regular files are served, but fstat(2) can tell only once the
   file is open). EAGAIN: a rename or mount, anywhere, raced a walk
   through "..", and the kernel could not be sure it stayed beneath root;
   the man page says to try again. */
static int open_beneath(int root, const char *name)
{
    struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd;
    int tries = 0;

    do
        fd = syscall(SYS_openat2, root, name, &how, sizeof how);
    while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < OPEN_TRIES_MAX)));
    return (int)fd;
}

/* A file that could not be opened, as a response. 404 for every name that
   leads to no file beneath ROOT: one that does not exist (ENOENT, ENOTDIR),
   one that would leave ROOT (EXDEV) or loops (ELOOP); seen from outside, a
   file outside ROOT is just a file we do not have. A socket (ENXIO) or a
   device without its driver (ENODEV) is not a regular file: 404, as
   serve_file says for a FIFO. 403 for a file we have but may not read
   (EACCES, EPERM). 503 when it may work later: we are out of descriptors
   (EMFILE, ENFILE), or renames kept racing openat2 (EAGAIN). The path in
   the log is the one sent, which holds visible characters only. */
static struct response refuse_file(const char *path)
{
    int error = errno;

    printf("not served: %s: openat2: %s\n", path, strerror(error));
    switch (error) {
    case ENOENT:
    case ENOTDIR:
    case EXDEV:
    case ELOOP:
    case ENAMETOOLONG:
    case ENXIO:
    case ENODEV: return error_response(404, "no such file");
    case EACCES:
    case EPERM: return error_response(403, "not allowed");
    case EMFILE:
    case ENFILE:
    case EAGAIN: return error_response(503, "try again later");
    default: return error_response(500, "the file could not be opened");
    }
}

/* A directory asked for without its final slash, "/guide": the relative
   links of its page ("style.css") would be looked for in the directory
   above it. So we send the browser to "/guide/" (301, RFC 9110 section
   15.4.2), as nginx and Apache do, rather than serve the page at the
   wrong address. The path holds visible characters only: it is safe in a
   header field. */
static struct response redirect_to_directory(const char *path)
{
    struct response response = error_response(301, "a directory: its path ends in /");

    response.location = path;
    response.location_length = (int)strcspn(path, "?");
    return response;
}

/* An HTTP date, RFC 9110 section 5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT".
   %a and %b are English because we never call setlocale(3). False if
   the time has no such date (a year past 9999). */
static bool format_date(time_t when, char date[DATE_MAX])
{
    struct tm utc;

    return gmtime_r(&when, &utc) != NULL &&
           strftime(date, DATE_MAX, "%a, %d %b %Y %H:%M:%S GMT", &utc) > 0;
}

/* The value of a header field sent once; NULL if it was not sent, or sent
   more than once. */
static const char *field_value(const struct request *request, const char *name)
{
    const char *value = NULL;

    for (size_t i = 0; i < request->field_count; i++) {
        if (strcasecmp(request->fields[i].name, name) != 0)
            continue;
        if (value != NULL)
            return NULL;
        value = request->fields[i].value;
    }
    return value;
}

/* If-Modified-Since, RFC 9110 section 13.1.3: the client has a copy from
   that date; if the file has not changed since, 304 Not Modified, and no
   body. The date must be an IMF-fixdate (section 5.6.7), exactly: we read
   it with strptime(3), which is lenient, and keep it only if writing it
   back gives the same text. Anything else is ignored, as the RFC asks, and
   the file is sent. */
static bool is_not_modified(const struct request *request, time_t modified)
{
    const char *since = field_value(request, "If-Modified-Since");
    struct tm fields = {0};
    char date[DATE_MAX];

    if (since == NULL)
        return false;
    const char *end = strptime(since, "%a, %d %b %Y %H:%M:%S GMT", &fields);
    if (end == NULL || *end != '\0')
        return false;
    time_t when = timegm(&fields);
    return when != (time_t)-1 && format_date(when, date) && strcmp(date, since) == 0 &&
           modified <= when;
}

/* GET or HEAD of a file beneath ROOT. A path that ends in "/" names a
   directory, which serves its index.html. Only regular files are served:
   not a FIFO, a device or a socket. */
static struct response serve_file(int root, const struct request *request)
{
    char name[TARGET_MAX + sizeof INDEX_FILE];
    struct rejection rejection =
        decode_path(request->path, name, sizeof name - strlen(INDEX_FILE));
    if (rejected(rejection))
        return error_response(rejection.status, rejection.reason);
    size_t length = strlen(name);
    if (name[length - 1] == '/')
        snprintf(name + length, sizeof name - length, "%s", INDEX_FILE);

    /* name + 1: the path without its first "/", relative to ROOT. */
    int file = open_beneath(root, name + 1);
    if (file < 0)
        return refuse_file(request->path);
    struct stat status;
    if (fstat(file, &status) < 0) {
        warn("fstat");
        close_descriptor(file);
        return error_response(500, "the file could not be read");
    }
    if (!S_ISREG(status.st_mode)) {
        close_descriptor(file);
        if (S_ISDIR(status.st_mode))
            return redirect_to_directory(request->path);
        printf("not served: %s: not a regular file\n", request->path);
        return error_response(404, "no such file");
    }

    struct response response = {.status = 200,
                                .content_type = media_type(name),
                                .has_file = true,
                                .file = file,
                                .file_size = status.st_size,
                                .modified = status.st_mtim.tv_sec};
    if (is_not_modified(request, response.modified))
        response.status = 304;
    if (response.status == 304 || request->method == METHOD_HEAD) {
        close_descriptor(file);
        response.file = -1;
    }
    return response;
}

/* The directory we serve, opened once, before any client comes. O_PATH: a
   descriptor that names the directory, for openat2 to start from, and
   can do nothing else. We try openat2 once here: a kernel older than 5.6
   has none (ENOSYS), and without the kernel's guard we would rather not
   serve files at all than serve them with a guard of our own. A ROOT we
   cannot open is a bad argument, like a bad PORT: exit status 2. */
static int open_root(const char *path)
{
    int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        fprintf(stderr,
                "open %s: %s\n"
                "ROOT is the directory to serve: run ./step11 from the top of the "
                "repository to serve its example site, or name one: ./step11 8080 "
                "127.0.0.1 DIRECTORY\n",
                path, strerror(errno));
        exit(EXIT_USAGE);
    }
    int probe = open_beneath(root, ".");
    if (probe < 0 && errno == ENOSYS) {
        fprintf(stderr,
                "openat2: %s: Linux 5.6 or later keeps every path beneath %s; "
                "serving no files without it\n",
                strerror(errno), path);
        exit(EXIT_FAILURE);
    }
    if (probe >= 0)
        close_descriptor(probe);
    printf("serving the files of %s\n", path);
    return root;
}

/* Decides what to answer to a well-formed request. It goes by the path,
   which is the target unless that came in absolute-form: GET and HEAD
   serve a file beneath root. */
static struct response route(const struct request *request, int root)
{
    bool is_get_or_head =
        request->method == METHOD_GET || request->method == METHOD_HEAD;
    bool is_post = request->method == METHOD_POST;
    bool is_options = request->method == METHOD_OPTIONS;

    /* A method we know but do not serve is 405; one we have never heard
       of, 501. */
    if (!is_get_or_head && !is_post && !is_options)
        return request->method != METHOD_UNKNOWN
                   ? error_response(405, "method not allowed")
                   : error_response(501, "unknown method");
    if (is_get_or_head)
        return serve_file(root, request);
    /* "*" is the server as a whole; the parser let it through for OPTIONS only. */
    if (strcmp(request->path, "/") != 0 && strcmp(request->path, "*") != 0)
        return error_response(404, "no such page");
    if (is_post && request->content_length == NULL)
        return error_response(411, "POST needs a Content-Length");
    if (is_options) /* the answer is the Allow field, and no content */
        return (struct response){.status = 200,
                                 .content_type = "text/plain; charset=utf-8"};

    struct response response = {.status = 200,
                                .content_type = "text/html; charset=utf-8"};
    snprintf(response.body, sizeof response.body, "<p>received %lu bytes</p>\n",
             request->body_length);
    return response;
}

/* ==== Sending the response ==== */

/* The date now, as an HTTP date (format_date). The date changes once a
   second, and one process may send thousands of responses in a second:
   we format it once a second, as nginx does, and copy it. */
static void format_http_date(char date[DATE_MAX])
{
    static time_t formatted_at = (time_t)-1;
    static char formatted[DATE_MAX];
    time_t now = time(NULL);

    if (now == (time_t)-1)
        die("time");
    if (now != formatted_at) {
        if (!format_date(now, formatted))
            die("gmtime_r");
        formatted_at = now;
    }
    memcpy(date, formatted, DATE_MAX);
}

/* Every response says whether the connection stays open, RFC 9112,
   section 9.3. HTTP/1.1 stays open unless told otherwise; HTTP/1.0
   closes unless told otherwise, so it needs to hear "keep-alive". */
static const char *connection_field(const struct request *request,
                                    const struct response *response)
{
    if (!response->keep_alive)
        return "Connection: close\r\n";
    if (is_http_1_0(request))
        return "Connection: keep-alive\r\n";
    return "";
}

/* sendfile(2) copies from the file to the socket inside the kernel, from
   file_offset on, and moves file_offset on: the bytes never come up into
   our memory. Like write(2), it may send fewer bytes than asked, or none
   (EAGAIN) while the socket's buffer is full. One call a turn, of
   FILE_CHUNK_MAX bytes at most, as there is one read(2) a turn: a client
   that reads a large file fast does not keep the loop from the others.
   A file that shrank since fstat(2) ends early: sendfile returns 0. We
   cannot send the Content-Length we promised, so the connection ends
   (false), and the client sees a response cut short. */
static bool send_file(int fd, struct outgoing *outgoing)
{
    if (outgoing->file < 0 || outgoing->file_offset == outgoing->file_size)
        return true;
    off_t left = outgoing->file_size - outgoing->file_offset;
    ssize_t count;
    do
        count = sendfile(fd, outgoing->file, &outgoing->file_offset,
                         left < FILE_CHUNK_MAX ? (size_t)left : FILE_CHUNK_MAX);
    while (count < 0 && errno == EINTR);
    if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    if (count < 0) {
        warn("sendfile");
        return false;
    }
    if (count == 0) {
        printf("dropped: the file shrank while it was sent\n");
        return false;
    }
    return true;
}

static bool is_sent(const struct outgoing *outgoing)
{
    return outgoing->sent == outgoing->length &&
           (outgoing->file < 0 || outgoing->file_offset == outgoing->file_size);
}

/* The file of a response is closed once it is sent, or when the
   connection ends before. */
static void close_outgoing_file(struct outgoing *outgoing)
{
    if (outgoing->file >= 0)
        close_descriptor(outgoing->file);
    outgoing->file = -1;
}

/* How many bytes of ours the socket holds, sent or not, that the client
   has not acknowledged: SIOCOUTQ (tcp(7)). -1 if the kernel does not say. */
static int bytes_in_socket(int fd)
{
    int in_socket;

    if (ioctl(fd, SIOCOUTQ, &in_socket) < 0) {
        warn("ioctl SIOCOUTQ");
        return -1;
    }
    return in_socket;
}

/* write(2) may take fewer bytes than we ask (a short write), and on a
   non-blocking socket none at all while the socket's buffer is full
   (EAGAIN): what is left waits in `outgoing` until epoll says there is
   room. Once the head is out, the file follows. Returns false if the
   write failed.
   The head goes with send(2) and MSG_MORE when a file follows: the kernel
   holds it until the file's first bytes join it. Sent alone, the head
   would be a small packet not yet acknowledged, and TCP would hold the
   file's bytes back until the client's acknowledgement, which a client
   delays by 40 ms or more (Nagle's algorithm, tcp(7)). */
static bool send_outgoing(int fd, struct outgoing *outgoing)
{
    int more = outgoing->file >= 0 && outgoing->file_size > 0 ? MSG_MORE : 0;

    while (outgoing->sent < outgoing->length) {
        ssize_t count = send(fd, outgoing->bytes + outgoing->sent,
                             outgoing->length - outgoing->sent, more);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (count < 0) {
            warn("send");
            return false;
        }
        outgoing->sent += (size_t)count;
    }
    return send_file(fd, outgoing);
}

/* Allow lists the methods we serve: a 405 must send it, and it is what a
   successful OPTIONS asks for. */
static const char *allow_field(const struct request *request,
                               const struct response *response)
{
    bool is_options = request->method == METHOD_OPTIONS;
    return response->status == 405 || (is_options && response->status == 200)
               ? ALLOW_FIELD
               : "";
}

/* Last-Modified (RFC 9110 section 8.8.2), the date a client sends back
   in If-Modified-Since; or a 301's Location (section 10.2.2). */
static void format_file_fields(const struct response *response,
                               char fields[FILE_FIELDS_MAX])
{
    char date[DATE_MAX];

    fields[0] = '\0';
    if (response->has_file && format_date(response->modified, date))
        snprintf(fields, FILE_FIELDS_MAX, "Last-Modified: %s\r\n", date);
    else if (response->location != NULL)
        snprintf(fields, FILE_FIELDS_MAX, "Location: %.*s/\r\n",
                 response->location_length, response->location);
}

/* Puts the status line, the header fields and, unless the request was
   HEAD, the body in `outgoing`, to be sent in one write; a file is sent
   after them. */
static void format_response(const struct request *request,
                            const struct response *response, struct outgoing *outgoing)
{
    bool is_head = request->method == METHOD_HEAD;
    const char *allow = allow_field(request, response);
    char date[DATE_MAX];
    const char *connection = connection_field(request, response);
    char file_fields[FILE_FIELDS_MAX];
    long long content_length = response->has_file ? (long long)response->file_size
                                                  : (long long)strlen(response->body);

    format_http_date(date);
    format_file_fields(response, file_fields);
    int length = snprintf(outgoing->bytes, sizeof outgoing->bytes,
                          "HTTP/1.1 %d %s\r\n"
                          "Date: %s\r\n"
                          "Content-Type: %s\r\n"
                          "Content-Length: %lld\r\n"
                          "%s"
                          "%s"
                          "%s"
                          "\r\n"
                          "%s",
                          response->status, reason_phrase(response->status), date,
                          response->content_type, content_length, file_fields, allow,
                          connection, is_head ? "" : response->body);
    outgoing->status = response->status;
    outgoing->keep_alive = response->keep_alive;
    outgoing->sent = 0;
    outgoing->length = 0;
    outgoing->file = response->has_file ? response->file : -1;
    outgoing->file_offset = 0;
    outgoing->file_size = response->file_size;
    if (length < 0 || (size_t)length >= sizeof outgoing->bytes) {
        fprintf(stderr, "response does not fit in %d bytes\n", RESPONSE_MAX);
        close_outgoing_file(outgoing);
        outgoing->keep_alive = false; /* no answer: the client must not wait for one */
    } else {
        outgoing->length = (size_t)length;
    }
}

/* Has the client sent bytes that we have not read? recv(2) with MSG_PEEK
   looks without taking them; MSG_DONTWAIT returns at once if there are none. */
static bool has_unread_bytes(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void log_access(const char *peer, const struct request *request, int status,
                       size_t sent)
{
    printf("%s %s %s %d %zu\n", peer, request->method_name ? request->method_name : "-",
           request->target ? request->target : "-", status, sent);
}

/* ==== Keeping the connection open ==== */

/* Does a Connection field name this option? Its value is a list of
   options separated by commas, compared without case (RFC 9110, section
   7.6.1), and a client may send the field more than once. */
static bool has_connection_option(const struct request *request, const char *option)
{
    size_t length = strlen(option);

    for (size_t i = 0; i < request->field_count; i++) {
        if (strcasecmp(request->fields[i].name, "Connection") != 0)
            continue;
        const char *item = request->fields[i].value;
        while (*item != '\0') {
            item += strspn(item, " \t,");
            size_t item_length = strcspn(item, " \t,");
            if (item_length == length && strncasecmp(item, option, length) == 0)
                return true;
            item += item_length;
        }
    }
    return false;
}

/* RFC 9112, section 9.3: an HTTP/1.1 client keeps the connection unless it
   says "close"; an HTTP/1.0 client closes it unless it says "keep-alive". */
static bool wants_keep_alive(const struct request *request)
{
    if (has_connection_option(request, "close"))
        return false;
    return !is_http_1_0(request) || has_connection_option(request, "keep-alive");
}

/* Pipelining: the bytes after a request (its head and its body) are the
   start of the next one. We move them to the front of the buffer with
   memmove(3), rather than keep an offset to where the next request
   starts, so that reading and parsing stay as they were: every request
   starts at bytes[0] and may use all HEAD_MAX bytes for its head. It
   copies what is left, less than HEAD_MAX bytes, and only when the client
   sent more than one request at once. */
static void forget_request(struct received *received, size_t used)
{
    received->length -= used;
    received->scanned = 0;
    memmove(received->bytes, received->bytes + used, received->length);
}

/* ==== Many connections at once ==== */

/* Where a connection is. Each state has a timeout, which starts when the
   connection enters it:
     READING  a request has begun, or the connection is new: 408 after
              REQUEST_TIMEOUT_SECONDS, as in step 05;
     WRITING  a response waits for room in the socket: dropped after
              RESPONSE_TIMEOUT_SECONDS;
     IDLE     between two requests: closed after KEEPALIVE_TIMEOUT_SECONDS;
     CLOSING  our side is shut down, and what the client sends is dropped
              until it closes too, for LINGER_SECONDS at most. */
enum state { READING, WRITING, IDLE, CLOSING, STATES };

static const int TIMEOUT_SECONDS[STATES] = {
    [READING] = REQUEST_TIMEOUT_SECONDS,
    [WRITING] = RESPONSE_TIMEOUT_SECONDS,
    [IDLE] = KEEPALIVE_TIMEOUT_SECONDS,
    [CLOSING] = LINGER_SECONDS,
};

/* What a connection needs only while a request is under way: what the
   client sent, the request parsed from it, and the response going out. */
struct buffers {
    struct received received;
    struct request request;
    struct outgoing outgoing;
    struct buffers *next_free;
};

/* One client. In step 08 its child kept all this in local variables, and
   where it was in the request was where the child's code had stopped, in
   a read(2). One process serving many clients keeps it here, so that it
   can leave a connection at any point and come back to it. */
struct connection {
    int fd;
    enum state state;
    long long deadline; /* now_microseconds()'s clock */
    struct connection *previous; /* in the queue of its state */
    struct connection *next;
    struct buffers *buffers; /* none while idle */
    uint32_t events; /* what epoll watches for: EPOLLIN or EPOLLOUT */
    unsigned long served; /* requests answered on this connection */
    char peer[ENDPOINT_TEXT_MAX];
};

/* The connections in one state, the nearest deadline first. Every
   connection in a state has the same timeout, so one that enters the
   state goes at the end, and the queue stays in order without sorting. */
struct queue {
    struct connection *first;
    struct connection *last;
};

struct server {
    int listener;
    int epoll;
    size_t open; /* connections */
    bool accepting; /* is epoll watching the listener? */
    long long paused_until; /* if not: when we may try again, at the latest */
    struct queue queues[STATES];
    struct buffers *free_buffers;
    size_t free_count; /* on that list */
    int root; /* the directory we serve (open_root) */
};

static void enqueue(struct queue *queue, struct connection *connection)
{
    connection->previous = queue->last;
    connection->next = NULL;
    if (queue->last != NULL)
        queue->last->next = connection;
    else
        queue->first = connection;
    queue->last = connection;
}

static void dequeue(struct queue *queue, struct connection *connection)
{
    if (connection->previous != NULL)
        connection->previous->next = connection->next;
    else
        queue->first = connection->next;
    if (connection->next != NULL)
        connection->next->previous = connection->previous;
    else
        queue->last = connection->previous;
}

/* A connection enters a state: its deadline is now plus the state's
   timeout, the latest of its queue. */
static void start_timeout(struct server *server, struct connection *connection,
                          enum state state)
{
    connection->state = state;
    connection->deadline = deadline_in(TIMEOUT_SECONDS[state]);
    enqueue(&server->queues[state], connection);
}

static void enter_state(struct server *server, struct connection *connection,
                        enum state state)
{
    dequeue(&server->queues[connection->state], connection);
    start_timeout(server, connection, state);
}

/* epoll_ctl(2): what epoll waits for on a connection, EPOLLIN (bytes to
   read) or EPOLLOUT (room to write). epoll is level-triggered unless told
   otherwise: epoll_wait(2) reports a connection for as long as it is
   ready, so one read(2) a turn is enough, and nobody waits while one
   client's bytes are read to the end. */
static void watch(struct server *server, struct connection *connection, uint32_t events)
{
    struct epoll_event event = {.events = events, .data.ptr = connection};

    if (connection->events == events)
        return;
    if (epoll_ctl(server->epoll, EPOLL_CTL_MOD, connection->fd, &event) < 0)
        die("epoll_ctl");
    connection->events = events;
}

/* A new connection: epoll watches it for bytes, and it has
   REQUEST_TIMEOUT_SECONDS to send its first request, as in step 05. */
static void open_connection(struct server *server, int fd,
                            const struct sockaddr_in *peer)
{
    struct connection *connection = calloc(1, sizeof *connection);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = connection};

    if (connection == NULL) {
        warn("calloc");
    } else if (epoll_ctl(server->epoll, EPOLL_CTL_ADD, fd, &event) < 0) {
        warn("epoll_ctl");
    } else {
        connection->fd = fd;
        connection->events = EPOLLIN;
        format_endpoint(peer, connection->peer);
        start_timeout(server, connection, READING);
        server->open++;
        printf("accepted %s on fd %d\n", connection->peer, fd);
        return;
    }
    free(connection);
    close_descriptor(fd);
}

/* Buffers given back are kept for the next connection that needs them:
   free(3) may give the memory back to the kernel, and malloc(3) then ask
   for it again, a system call each (M_TRIM_THRESHOLD in mallopt(3)). But
   only FREE_BUFFERS_MAX of them: a crowd of slow clients would otherwise
   leave the server holding its buffers for good. */
static void give_back_buffers(struct server *server, struct connection *connection)
{
    if (connection->buffers == NULL)
        return;
    close_outgoing_file(&connection->buffers->outgoing);
    if (server->free_count == FREE_BUFFERS_MAX) {
        free(connection->buffers);
    } else {
        connection->buffers->next_free = server->free_buffers;
        server->free_buffers = connection->buffers;
        server->free_count++;
    }
    connection->buffers = NULL;
}

/* close(2) takes the descriptor out of epoll's set too, since it is the
   last one of its socket: we never dup(2) it, nor fork(2). One connection
   fewer: if we had stopped accepting, we may accept again. */
static void end_connection(struct server *server, struct connection *connection)
{
    dequeue(&server->queues[connection->state], connection);
    give_back_buffers(server, connection);
    close_descriptor(connection->fd);
    free(connection);
    server->open--;
    server->paused_until = 0;
}

/* A connection holds buffers from the first byte of a request to the end
   of its response, so that ten thousand idle clients cost ten thousand
   small structs, not ten thousand buffers of 78 KiB. If the connection
   has none and there is no memory for them, it is closed: returns false. */
static bool hold_buffers(struct server *server, struct connection *connection)
{
    struct buffers *buffers = server->free_buffers;

    if (connection->buffers != NULL)
        return true;
    if (buffers != NULL) {
        server->free_buffers = buffers->next_free;
        server->free_count--;
    } else if ((buffers = malloc(sizeof *buffers)) == NULL) {
        warn("malloc");
        end_connection(server, connection);
        return false;
    }
    buffers->received.length = 0;
    buffers->received.scanned = 0;
    buffers->request = (struct request){0};
    buffers->outgoing.file = -1;
    connection->buffers = buffers;
    return true;
}

/* Closing a socket that has unread bytes makes the kernel send a reset,
   which can destroy the response before the client reads it (RFC 9112,
   section 9.6). So when the client may still be sending, shutdown(2) our
   side first, which sends FIN after the response, then read and drop
   what the client sends until it closes too, for LINGER_SECONDS at most.
   When we read the whole request and nothing more has come, we close at
   once, as nginx does: waiting for every client's FIN costs a round trip
   per request. Only a client that sends more after a whole request,
   without waiting for the answer, can still meet a reset. The lingering
   is a state of its own, CLOSING: what the client sends is read and
   dropped as it comes (continue_closing). */
static void close_after_response(struct server *server, struct connection *connection,
                                 bool read_whole_request)
{
    if (read_whole_request && !has_unread_bytes(connection->fd)) {
        end_connection(server, connection);
        return;
    }
    if (shutdown(connection->fd, SHUT_WR) < 0)
        warn("shutdown");
    give_back_buffers(server, connection);
    enter_state(server, connection, CLOSING);
}

static void continue_closing(struct server *server, struct connection *connection)
{
    char discard[DISCARD_BUFFER_SIZE];

    ssize_t count = receive(connection->fd, discard, sizeof discard);
    if (count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        end_connection(server, connection);
}

/* ==== Serving a connection ==== */

/* What the caller of respond() does next. SERVE_NEXT: the response is
   out, and the next request has begun in the buffer: look for it.
   LET_GO: the connection waits for epoll (room to write, its next
   request, the client's close), or it has been closed and freed: it must
   not be touched. */
enum after_response { SERVE_NEXT, LET_GO };

/* The response is out: close the connection, or keep it for the next
   request, which may be in the buffer already (pipelining). */
static enum after_response finish_response(struct server *server,
                                           struct connection *connection)
{
    struct buffers *buffers = connection->buffers;
    struct request *request = &buffers->request;
    size_t used = request->head_length + request->body_length;

    close_outgoing_file(&buffers->outgoing);
    log_access(connection->peer, request, buffers->outgoing.status,
               buffers->outgoing.sent + (size_t)buffers->outgoing.file_offset);
    if (!buffers->outgoing.keep_alive) {
        /* request->body is set once the whole request has been read. */
        close_after_response(server, connection,
                             request->body != NULL && buffers->received.length == used);
        return LET_GO;
    }
    forget_request(&buffers->received, used);
    buffers->request = (struct request){0};
    if (buffers->received.length == 0) {
        give_back_buffers(server, connection);
        enter_state(server, connection, IDLE);
        return LET_GO;
    }
    enter_state(server, connection, READING);
    return SERVE_NEXT;
}

/* Sends what the socket takes of the response. What it does not take
   waits until there is room: epoll watches for EPOLLOUT instead of
   EPOLLIN meanwhile, so that a client that sends requests without reading
   the answers gets no more answers until it has read them. */
static enum after_response continue_writing(struct server *server,
                                            struct connection *connection)
{
    struct outgoing *outgoing = &connection->buffers->outgoing;

    if (!send_outgoing(connection->fd, outgoing)) {
        log_access(connection->peer, &connection->buffers->request, outgoing->status,
                   outgoing->sent + (size_t)outgoing->file_offset);
        end_connection(server, connection);
        return LET_GO;
    }
    if (!is_sent(outgoing)) {
        /* The deadline starts again each time the client has taken some:
           a large file may take longer than RESPONSE_TIMEOUT_SECONDS. */
        enter_state(server, connection, WRITING);
        outgoing->in_socket = bytes_in_socket(connection->fd);
        watch(server, connection, EPOLLOUT);
        return LET_GO;
    }
    watch(server, connection, EPOLLIN);
    return finish_response(server, connection);
}

/* Answers a request, or a rejection, and starts sending the response. */
static enum after_response respond(struct server *server, struct connection *connection,
                                   struct rejection rejection)
{
    struct buffers *buffers = connection->buffers;
    struct request *request = &buffers->request;

    if (rejected(rejection))
        print_rejection(rejection);
    else
        print_request(request);

    if (rejected(rejection) && rejection.status == NO_RESPONSE) {
        end_connection(server, connection); /* the client is gone: nobody to answer */
        return LET_GO;
    }
    struct response response = rejected(rejection)
                                   ? error_response(rejection.status, rejection.reason)
                                   : route(request, server->root);
    connection->served++;
    /* After a rejection we cannot tell where the next request begins. */
    response.keep_alive = !rejected(rejection) && wants_keep_alive(request) &&
                          connection->served < KEEPALIVE_REQUESTS_MAX;
    format_response(request, &response, &buffers->outgoing);
    return continue_writing(server, connection);
}

/* Answers the requests that are complete in the buffer, one after the
   other, as a client may send several at once. Stops at one that is not
   complete yet, or when the connection waits to write, falls idle or
   closes. */
static void serve_requests(struct server *server, struct connection *connection)
{
    for (;;) {
        struct buffers *buffers = connection->buffers;
        struct rejection rejection =
            find_request(&buffers->received, &buffers->request);
        if (!rejected(rejection) && buffers->request.body == NULL)
            return; /* the rest has not arrived: epoll will say when it has */
        if (respond(server, connection, rejection) == LET_GO)
            return;
    }
}

/* Bytes of a request have arrived: one read(2), then answer what is
   complete. */
static void continue_reading(struct server *server, struct connection *connection)
{
    if (!hold_buffers(server, connection))
        return;
    struct buffers *buffers = connection->buffers;
    struct rejection rejection =
        receive_more(connection->fd, &buffers->received, read_limit(&buffers->request));
    if (rejected(rejection))
        respond(server, connection, rejection);
    else
        serve_requests(server, connection);
}

/* Between two requests the client owes us nothing: it may send the next
   one now, later or never. When it closes, or says nothing for
   KEEPALIVE_TIMEOUT_SECONDS (time_out), the connection is over, without
   a 408, since no request has begun (RFC 9112, section 9.5). */
static void start_next_request(struct server *server, struct connection *connection)
{
    if (!hold_buffers(server, connection))
        return;
    struct received *received = &connection->buffers->received;
    ssize_t count = receive(connection->fd, received->bytes, HEAD_MAX);
    if (count > 0) {
        received->length = (size_t)count;
        enter_state(server, connection, READING);
        serve_requests(server, connection);
        return;
    }
    if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        give_back_buffers(server, connection);
        return;
    }
    if (count == 0)
        printf("closed by the client\n");
    else
        printf("dropped: %s\n", strerror(errno));
    end_connection(server, connection);
}

/* epoll says a connection is ready: to read, to write, or closed. What
   to do depends on where the connection is. */
static void on_event(struct server *server, struct connection *connection)
{
    switch (connection->state) {
    case READING: continue_reading(server, connection); break;
    case WRITING:
        if (continue_writing(server, connection) == SERVE_NEXT)
            serve_requests(server, connection);
        break;
    case IDLE: start_next_request(server, connection); break;
    case CLOSING: continue_closing(server, connection); break;
    case STATES: break;
    }
}

/* The socket may have had no room for us all along, and yet the client
   reads: a socket's buffers grow to megabytes (tcp(7)), and the kernel
   says there is room only when a third of its buffer is free, which a
   client that reads slowly may take longer than RESPONSE_TIMEOUT_SECONDS
   to free. If the socket holds fewer bytes than when the deadline
   started, the client is reading; we note how many it holds now. */
static bool is_taking_bytes(struct connection *connection)
{
    struct outgoing *outgoing = &connection->buffers->outgoing;
    int in_socket = bytes_in_socket(connection->fd);
    bool taking = in_socket >= 0 && in_socket < outgoing->in_socket;

    outgoing->in_socket = in_socket;
    return taking;
}

/* A connection's deadline has passed: what that means depends on its
   state too. */
static void time_out(struct server *server, struct connection *connection)
{
    switch (connection->state) {
    case READING:
        if (hold_buffers(server, connection))
            respond(server, connection, reject(408, "timed out"));
        return;
    case WRITING:
        if (is_taking_bytes(connection)) {
            enter_state(server, connection, WRITING);
            return;
        }
        printf("dropped: the response was not read for %d seconds\n",
               RESPONSE_TIMEOUT_SECONDS);
        break;
    case IDLE:
        printf("closed: idle for %d seconds\n", KEEPALIVE_TIMEOUT_SECONDS);
        break;
    case CLOSING:
    case STATES: break;
    }
    end_connection(server, connection);
}

/* ==== The event loop ==== */

/* epoll_create1(2): the set of descriptors we wait on, the listener
   first. Its events carry no connection (data.ptr is NULL). */
static int create_epoll(int listener)
{
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};

    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0)
        die("epoll_create1");
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) < 0)
        die("epoll_ctl");
    return epoll;
}

/* Out of descriptors (EMFILE, ENFILE) or at CONNECTIONS_MAX, we cannot
   take the next connection; but the listener stays ready, so
   level-triggered epoll would wake us for it at once, again and again.
   Rather than spin, we take the listener out of epoll's set until a
   connection closes, or, with `until`, until then at the latest: the
   clients wait in the listen queue meanwhile. */
static void pause_accepting(struct server *server, long long until)
{
    if (epoll_ctl(server->epoll, EPOLL_CTL_DEL, server->listener, NULL) < 0)
        die("epoll_ctl");
    server->accepting = false;
    server->paused_until = until;
}

/* When the listener may go back into epoll's set: never while it is
   there already, or while CONNECTIONS_MAX are open (LLONG_MAX). */
static long long accept_again_at(const struct server *server)
{
    if (server->accepting || server->open == CONNECTIONS_MAX)
        return LLONG_MAX;
    return server->paused_until;
}

static void resume_accepting(struct server *server)
{
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};

    if (now_microseconds() < accept_again_at(server))
        return;
    if (epoll_ctl(server->epoll, EPOLL_CTL_ADD, server->listener, &event) < 0)
        die("epoll_ctl");
    server->accepting = true;
}

/* Takes the connections that are queued, EVENTS_MAX at most, so that the
   open connections get their turn too. */
static void accept_connections(struct server *server)
{
    for (int accepted = 0; accepted < EVENTS_MAX && server->accepting; accepted++) {
        struct sockaddr_in peer;
        int fd = accept_connection(server->listener, &peer);
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (fd < 0) {
            warn("accept4");
            pause_accepting(server,
                            now_microseconds() + (long long)ACCEPT_PAUSE_MILLISECONDS *
                                                     MICROSECONDS_PER_MILLISECOND);
            return;
        }
        open_connection(server, fd, &peer);
        if (server->open == CONNECTIONS_MAX) {
            printf("%d connections: accepting no more until one closes\n",
                   CONNECTIONS_MAX);
            pause_accepting(server, 0);
        }
    }
}

/* How long epoll_wait may sleep, in milliseconds: until the nearest
   deadline, rounded up so as not to wake just before it, or for ever
   (-1) if nothing has one. */
static int next_timeout(const struct server *server)
{
    long long nearest = accept_again_at(server);

    for (int state = 0; state < STATES; state++) {
        const struct connection *first = server->queues[state].first;
        if (first != NULL && first->deadline < nearest)
            nearest = first->deadline;
    }
    if (nearest == LLONG_MAX)
        return -1;
    long long left = nearest - now_microseconds();
    if (left <= 0)
        return 0;
    return (int)((left + MICROSECONDS_PER_MILLISECOND - 1) /
                 MICROSECONDS_PER_MILLISECOND);
}

/* epoll_wait(2), and the log written when the server has nothing to do.
   Flushing it at every turn of the loop would cost a write(2) a turn: so
   we first wait LOG_FLUSH_MILLISECONDS, and flush only if nothing came
   in that time. A busy server writes its log when stdio's buffer is
   full, an idle one at once. Returns how many events there are. */
static int wait_for_events(int epoll, struct epoll_event events[EVENTS_MAX],
                           int timeout)
{
    int first = timeout >= 0 && timeout < LOG_FLUSH_MILLISECONDS
                    ? timeout
                    : LOG_FLUSH_MILLISECONDS;

    int count = epoll_wait(epoll, events, EVENTS_MAX, first);
    if (count == 0) {
        flush_log();
        if (timeout != first)
            count = epoll_wait(epoll, events, EVENTS_MAX,
                               timeout < 0 ? -1 : timeout - first);
    }
    if (count < 0 && errno != EINTR)
        die("epoll_wait");
    return count < 0 ? 0 : count;
}

/* Every connection whose deadline has passed: the first ones of each
   queue. time_out takes each out of its queue. */
static void expire_connections(struct server *server)
{
    long long now = now_microseconds();

    for (int state = 0; state < STATES; state++) {
        struct connection *first;
        while ((first = server->queues[state].first) != NULL && first->deadline <= now)
            time_out(server, first);
    }
}

/* The event loop: wait until something is ready, do it, and wait again.
   A connection appears once in a batch of events, and only its own
   handler closes it, so each event's connection is still open when its
   turn comes; new connections are accepted after the batch. */
static void serve_forever(struct server *server)
{
    struct epoll_event events[EVENTS_MAX];

    for (;;) {
        resume_accepting(server);
        int count = wait_for_events(server->epoll, events, next_timeout(server));
        bool listener_ready = false;
        for (int i = 0; i < count; i++) {
            if (events[i].data.ptr == NULL)
                listener_ready = true;
            else
                on_event(server, events[i].data.ptr);
        }
        if (listener_ready)
            accept_connections(server);
        expire_connections(server);
    }
}

/* Every connection is a descriptor, and a process can open no more than
   RLIMIT_NOFILE. The soft limit, often 1024, is ours to raise up to the
   hard limit (setrlimit(2)). */
static void open_many_files(void)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("getrlimit");
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        warn("setrlimit RLIMIT_NOFILE");
    else if (limit.rlim_cur != RLIM_INFINITY)
        printf("can open %llu descriptors\n", (unsigned long long)limit.rlim_cur);
}

/* A client that hangs up before we write would otherwise kill the server
   with SIGPIPE (signal(7)). Ignored, the signal becomes an EPIPE error
   from write(2), which we log like any other. */
static void ignore_sigpipe(void)
{
    struct sigaction action = {.sa_handler = SIG_IGN};

    if (sigemptyset(&action.sa_mask) < 0 || sigaction(SIGPIPE, &action, NULL) < 0)
        die("sigaction");
}

int main(int argc, char *argv[])
{
    const char *root_path;
    struct sockaddr_in address = parse_arguments(argc, argv, &root_path);
    char text[ENDPOINT_TEXT_MAX];

    buffer_log();
    ignore_sigpipe();
    int listener = create_socket();
    bind_socket(listener, &address);
    address = bound_address(listener);
    format_endpoint(&address, text);
    printf("bound to %s\n", text);
    start_listening(listener);
    open_many_files();
    int root = open_root(root_path);
    struct server server = {.listener = listener,
                            .epoll = create_epoll(listener),
                            .accepting = true,
                            .root = root};
    printf("listening on http://%s/\n", text);
    serve_forever(&server);
}
