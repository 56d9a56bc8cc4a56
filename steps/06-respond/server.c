/*
 * Step 06: respond.
 *
 * The server answers every request with a complete HTTP/1.1 response,
 * written with write(2), and closes the connection so that the client
 * receives all of it.
 *
 * Build and run:  make step-06 && ./step06 [PORT [ADDRESS]]
 */
#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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
    LISTEN_BACKLOG = 128, /* connections the kernel queues for us */
    /* How long we wait */
    REQUEST_TIMEOUT_SECONDS = 5, /* to send a whole request */
    LINGER_SECONDS = 2, /* to wait for the client to close */
    /* Responses */
    RESPONSE_BODY_MAX = 256,
    RESPONSE_MAX = 1024, /* status line, header fields and body */
    DATE_MAX = sizeof "Sun, 06 Nov 1994 08:49:37 GMT",
    /* Connections */
    DISCARD_BUFFER_SIZE = 512, /* bytes read at a time while we wait */
};
#define DEFAULT_ADDRESS "127.0.0.1"

/* ==== The command line and the log ==== */

/* A system call failed: say which one, and why. */
static void warn(const char *call)
{
    fprintf(stderr, "%s: %s\n", call, strerror(errno));
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
            "usage: %s [PORT [ADDRESS]]\n"
            "  PORT     TCP port, 0 to let the kernel pick one (default %d)\n"
            "  ADDRESS  IPv4 address to listen on, 0.0.0.0 for all (default %s)\n",
            program, DEFAULT_PORT, DEFAULT_ADDRESS);
    exit(EXIT_USAGE);
}

/* The command line is the same for every step: [PORT [ADDRESS]]. */
static struct sockaddr_in parse_arguments(int argc, char *argv[])
{
    const char *program = argc > 0 ? argv[0] : "server";
    unsigned long port = DEFAULT_PORT;
    const char *host = argc > 2 ? argv[2] : DEFAULT_ADDRESS;
    struct sockaddr_in address = {.sin_family = AF_INET};

    if (argc > 3 || (argc > 1 && !parse_number(argv[1], PORT_MAX, &port)) ||
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

/* ==== The socket ==== */

/* socket(2): a TCP endpoint over IPv4. SOCK_CLOEXEC closes it in any
   program we might exec(3), so descriptors never leak into children. */
static int create_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
   did for the listening socket. */
static int accept_connection(int listener, struct sockaddr_in *peer)
{
    for (;;) {
        socklen_t length = sizeof *peer;
        int fd = accept4(listener, (struct sockaddr *)peer, &length, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EBADF || errno == EFAULT || errno == EINVAL || errno == ENOTSOCK)
            die("accept4");
        /* Any other error belongs to one connection (the client gave up,
           the network failed, we ran out of memory for a moment): log it
           and take the next one. EINTR just means a signal came first. */
        if (errno != EINTR)
            warn("accept4");
    }
}

/* close(2) frees the descriptor even when it reports an error, so it is
   never retried, not even after EINTR. */
static void close_connection(int fd)
{
    if (close(fd) < 0)
        warn("close");
}

/* ==== Reading a request ==== */

/* What a client has sent so far: the head, then the body. */
struct received {
    char bytes[HEAD_MAX + BODY_MAX];
    size_t length;
};

/* The units of now_microseconds()'s clock. */
enum time_units {
    NANOSECONDS_PER_MICROSECOND = 1000,
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

/* read(2), but never past the deadline. SO_RCVTIMEO (socket(7)) makes a
   read that waits too long fail with EAGAIN. Setting it to the time that
   is left before every read bounds the whole request, so a client that
   sends one byte a second cannot hold the server any longer than a
   client that sends nothing. */
static ssize_t receive(int fd, char *buffer, size_t size, long long deadline)
{
    long long left = deadline - now_microseconds();
    if (left <= 0) {
        errno = EAGAIN;
        return -1;
    }
    /* At least 1 µs is left, so the timeout is never 0, "wait forever". */
    struct timeval timeout = {.tv_sec = left / MICROSECONDS_PER_SECOND,
                              .tv_usec = left % MICROSECONDS_PER_SECOND};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0)
        return -1;

    ssize_t count;
    do
        count = read(fd, buffer, size);
    while (count < 0 && errno == EINTR);
    return count;
}

/* Reads whatever has arrived, without going past `limit` bytes in all. */
static struct rejection receive_more(int fd, struct received *received, size_t limit,
                                     long long deadline)
{
    ssize_t count = receive(fd, received->bytes + received->length,
                            limit - received->length, deadline);
    if (count > 0) {
        received->length += (size_t)count;
        return NOT_REJECTED;
    }
    if (count == 0 && received->length == 0)
        return reject(NO_RESPONSE, "closed without sending a request");
    if (count == 0)
        return reject(400, "closed before the end of the request");
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return reject(408, "timed out");
    return reject(NO_RESPONSE, strerror(errno));
}

/* Reads until the head is complete, however the bytes arrive: all at
   once, a byte at a time, or with part of the body. */
static struct rejection read_head(int fd, struct received *received,
                                  struct request *request, long long deadline)
{
    size_t scanned = 0;

    while ((request->head_length =
                find_head_end(received->bytes, received->length, scanned)) == 0) {
        if (received->length == HEAD_MAX) {
            /* RFC 9112, section 3: a request line too long to read is 414. */
            size_t start = skip_empty_lines(received->bytes, received->length);
            if (memchr(received->bytes + start, '\n', received->length - start) == NULL)
                return reject(414, "request line too long");
            return reject(431, "request head too large");
        }
        scanned = received->length;
        struct rejection rejection = receive_more(fd, received, HEAD_MAX, deadline);
        if (rejected(rejection))
            return rejection;
    }
    return NOT_REJECTED;
}

/* ==== The body, and the whole request ==== */

/* Reads the rest of a Content-Length body: part of it, or all of it, may
   have come with the head. */
static struct rejection read_body(int fd, struct received *received,
                                  struct request *request, long long deadline)
{
    size_t end = request->head_length + request->body_length;

    while (received->length < end) {
        struct rejection rejection = receive_more(fd, received, end, deadline);
        if (rejected(rejection))
            return rejection;
    }
    request->body = received->bytes + request->head_length;
    return NOT_REJECTED;
}

static struct rejection read_request(int fd, struct received *received,
                                     struct request *request)
{
    long long deadline = deadline_in(REQUEST_TIMEOUT_SECONDS);

    struct rejection rejection = read_head(fd, received, request, deadline);
    if (!rejected(rejection))
        rejection = parse_head(received->bytes, request->head_length, request);
    if (!rejected(rejection))
        rejection = read_body(fd, received, request, deadline);
    return rejection;
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

/* What we send back. The body is text, so it can be built with snprintf. */
struct response {
    int status;
    const char *content_type;
    char body[RESPONSE_BODY_MAX];
};

static const char HELLO_PAGE[] = "<h1>hello world</h1>\n";
/* The methods we serve, RFC 9110 section 10.2.1: sent with 405 (section
   15.5.6), and as the answer to OPTIONS (section 9.3.7). */
static const char ALLOW_FIELD[] = "Allow: GET, HEAD, POST, OPTIONS\r\n";

/* RFC 9110, section 15. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
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

/* Decides what to answer to a well-formed request. It goes by the path,
   which is the target unless that came in absolute-form. */
static struct response route(const struct request *request)
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
    if (is_post)
        snprintf(response.body, sizeof response.body, "<p>received %lu bytes</p>\n",
                 request->body_length);
    else
        snprintf(response.body, sizeof response.body, "%s", HELLO_PAGE);
    return response;
}

/* An HTTP date, RFC 9110 section 5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT".
   %a and %b are English because we never call setlocale(3). */
static void format_http_date(char date[DATE_MAX])
{
    time_t now = time(NULL);
    struct tm utc;

    if (now == (time_t)-1 || gmtime_r(&now, &utc) == NULL)
        die("time");
    strftime(date, DATE_MAX, "%a, %d %b %Y %H:%M:%S GMT", &utc);
}

/* write(2) may take fewer bytes than we ask (a short write): go on until
   it has taken them all. Returns how many it took. */
static size_t write_all(int fd, const char *bytes, size_t length)
{
    size_t written = 0;

    while (written < length) {
        ssize_t count = write(fd, bytes + written, length - written);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0) {
            warn("write");
            break;
        }
        written += (size_t)count;
    }
    return written;
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

/* Sends the status line, the header fields and, unless the request was
   HEAD, the body, in one write. The response is far smaller than a
   socket's send buffer, so write(2) never has to wait for the client. */
static size_t send_response(int fd, const struct request *request,
                            const struct response *response)
{
    bool is_head = request->method == METHOD_HEAD;
    const char *allow = allow_field(request, response);
    char date[DATE_MAX];
    char bytes[RESPONSE_MAX];

    format_http_date(date);
    int length = snprintf(bytes, sizeof bytes,
                          "HTTP/1.1 %d %s\r\n"
                          "Date: %s\r\n"
                          "Content-Type: %s\r\n"
                          "Content-Length: %zu\r\n"
                          "%s"
                          "Connection: close\r\n"
                          "\r\n"
                          "%s",
                          response->status, reason_phrase(response->status), date,
                          response->content_type, strlen(response->body), allow,
                          is_head ? "" : response->body);
    if (length < 0 || (size_t)length >= sizeof bytes) {
        fprintf(stderr, "response does not fit in %d bytes\n", RESPONSE_MAX);
        return 0;
    }
    return write_all(fd, bytes, (size_t)length);
}

/* Has the client sent bytes that we have not read? recv(2) with MSG_PEEK
   looks without taking them; MSG_DONTWAIT returns at once if there are none. */
static bool has_unread_bytes(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Closing a socket that has unread bytes makes the kernel send a reset,
   which can destroy the response before the client reads it (RFC 9112,
   section 9.6). So when the client may still be sending, shutdown(2) our
   side first, which sends FIN after the response, then read and drop
   what the client sends until it closes too, for LINGER_SECONDS at most.
   When we read the whole request and nothing more has come, we close at
   once, as nginx does: waiting for every client's FIN costs a round trip
   per request. Only a client that sends more after a whole request,
   without waiting for the answer, can still meet a reset. */
static void close_after_response(int fd, bool read_whole_request)
{
    if (!read_whole_request || has_unread_bytes(fd)) {
        char discard[DISCARD_BUFFER_SIZE];
        long long deadline = deadline_in(LINGER_SECONDS);

        if (shutdown(fd, SHUT_WR) < 0)
            warn("shutdown");
        while (receive(fd, discard, sizeof discard, deadline) > 0)
            continue;
    }
    close_connection(fd);
}

static void log_access(const char *peer, const struct request *request, int status,
                       size_t sent)
{
    printf("%s %s %s %d %zu\n", peer, request->method_name ? request->method_name : "-",
           request->target ? request->target : "-", status, sent);
}

/* ==== Running the server ==== */

/* Reads one request, answers it and closes the connection. */
static void handle_connection(int fd, const char *peer)
{
    struct received received;
    struct request request = {0};

    received.length = 0;
    struct rejection rejection = read_request(fd, &received, &request);
    if (rejected(rejection))
        print_rejection(rejection);
    else
        print_request(&request);

    if (rejected(rejection) && rejection.status == NO_RESPONSE) {
        close_connection(fd); /* the client is gone: nobody to answer */
        return;
    }
    struct response response = rejected(rejection)
                                   ? error_response(rejection.status, rejection.reason)
                                   : route(&request);
    size_t sent = send_response(fd, &request, &response);
    log_access(peer, &request, response.status, sent);
    close_after_response(fd, !rejected(rejection) &&
                                 received.length ==
                                     request.head_length + request.body_length);
}

/* One client at a time: accept, serve, close, and again. */
static void serve_forever(int listener)
{
    for (;;) {
        flush_log();
        struct sockaddr_in peer;
        char peer_text[ENDPOINT_TEXT_MAX];
        int fd = accept_connection(listener, &peer);
        format_endpoint(&peer, peer_text);
        printf("accepted %s on fd %d\n", peer_text, fd);
        handle_connection(fd, peer_text);
    }
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
    struct sockaddr_in address = parse_arguments(argc, argv);
    char text[ENDPOINT_TEXT_MAX];

    ignore_sigpipe();
    int listener = create_socket();
    bind_socket(listener, &address);
    address = bound_address(listener);
    format_endpoint(&address, text);
    printf("bound to %s\n", text);
    start_listening(listener);
    printf("listening on http://%s/\n", text);
    serve_forever(listener);
}
