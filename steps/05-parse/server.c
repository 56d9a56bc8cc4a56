/*
 * Step 05: parse.
 *
 * The server reads each request with read(2) until the end of its head,
 * parses the request line and the header fields, reads the body that
 * Content-Length announces, and prints what it found. It does not answer
 * yet: that is step 06.
 *
 * Build and run:  make step-05 && ./step05 [PORT [ADDRESS]]
 */
#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

/* ==== Running the server ==== */

/* Reads one request, prints what it says, and closes the connection:
   answering is the next step. */
static void handle_connection(int fd)
{
    struct received received;
    struct request request = {0};

    received.length = 0;
    struct rejection rejection = read_request(fd, &received, &request);
    if (rejected(rejection))
        print_rejection(rejection);
    else
        print_request(&request);
    close_connection(fd);
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
        handle_connection(fd);
    }
}

int main(int argc, char *argv[])
{
    struct sockaddr_in address = parse_arguments(argc, argv);
    char text[ENDPOINT_TEXT_MAX];

    int listener = create_socket();
    bind_socket(listener, &address);
    address = bound_address(listener);
    format_endpoint(&address, text);
    printf("bound to %s\n", text);
    start_listening(listener);
    printf("listening on http://%s/\n", text);
    serve_forever(listener);
}
