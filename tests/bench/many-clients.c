/*
 * many-clients: many keep-alive connections to one server, at once.
 *
 *   many-clients [--hold] PORT [CONNECTIONS [REQUESTS]]
 *
 * Opens CONNECTIONS (default 10000) TCP connections to 127.0.0.1:PORT,
 * and makes REQUESTS (default 2) requests "GET / HTTP/1.1" on each, one
 * at a time, reading each complete response (its Content-Length) before
 * the next. One process and one epoll(7) instance drive them all, so
 * the client is never what runs out first. It raises its own limit on
 * descriptors (RLIMIT_NOFILE, getrlimit(2)) to what it needs, and says
 * so if the hard limit is too low.
 *
 * Without --hold, each connection goes at its own pace and is closed
 * when it has made its requests: a fixed number of requests,
 * CONNECTIONS x REQUESTS, for counting system calls per request.
 *
 * With --hold, the requests go in rounds: every connection makes its
 * first request and reads its response, then, all still open, every
 * connection makes its second, and so on. After the last round it
 * prints "holding N connections open" and keeps them open, idle, until
 * its standard input ends: the time to read the server's memory.
 *
 * A server that closes a connection (Connection: close, or after a
 * number of requests) is connected to again for the next request; the
 * reconnections are counted. Prints what happened, and exits with 0 if
 * every request was answered with 200, else 1.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK and SOCK_CLOEXEC: socket(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    PORT_MAX = 65535,
    CONNECTIONS_MAX = 1000000,
    REQUESTS_MAX = 1000000,
    DEFAULT_CONNECTIONS = 10000,
    DEFAULT_REQUESTS = 2,
    EXIT_USAGE = 2,
    SPARE_DESCRIPTORS = 16, /* stdio, the epoll instance, and a margin */
    OPENING_MAX = 64, /* connections opened and not yet answered once */
    EVENTS_MAX = 256, /* taken from epoll_wait(2) at a time */
    RESPONSE_MAX = 2048, /* a response's head and body */
    DEADLINE_SECONDS = 120, /* for the whole run */
    MILLISECONDS_PER_SECOND = 1000,
    NANOSECONDS_PER_MILLISECOND = 1000000,
};

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

enum state {
    UNOPENED, /* not connected yet, or closed by the server between requests */
    CONNECTING, /* connect(2) in progress */
    SENDING, /* writing the request */
    RECEIVING, /* reading the response */
    IDLE, /* answered; waiting for the next round (--hold) */
    FINISHED, /* every request answered */
    FAILED,
};

struct connection {
    int fd;
    enum state state;
    unsigned long answered; /* requests answered on this connection */
    size_t sent; /* bytes of the request written */
    size_t received; /* bytes of the response in buffer */
    char buffer[RESPONSE_MAX];
};

struct run {
    int epoll;
    struct sockaddr_in server;
    bool hold;
    unsigned long requests; /* on each connection */
    size_t count; /* connections */
    struct connection *connections;
    size_t opened; /* connections opened a first time */
    size_t opening; /* of those, not yet answered once */
    size_t settled; /* IDLE, FINISHED or FAILED */
    unsigned long round; /* with --hold: the request every connection is at */
    unsigned long reconnections;
    unsigned long answered; /* requests answered with 200, in all */
    size_t failed;
};

static _Noreturn void die(const char *call)
{
    fprintf(stderr, "many-clients: %s: %s\n", call, strerror(errno));
    exit(EXIT_FAILURE);
}

static _Noreturn void usage(void)
{
    fprintf(stderr,
            "usage: many-clients [--hold] PORT [CONNECTIONS [REQUESTS]]\n"
            "  CONNECTIONS  to 127.0.0.1:PORT, at once (default %d)\n"
            "  REQUESTS     GET / on each, one after the other (default %d)\n"
            "  --hold       in rounds, and keep every connection open at the end\n"
            "               until standard input ends\n",
            DEFAULT_CONNECTIONS, DEFAULT_REQUESTS);
    exit(EXIT_USAGE);
}

/* A decimal number from 1 (0 if zero_allowed) to max, or usage. */
static unsigned long parse_number(const char *text, unsigned long max,
                                  bool zero_allowed)
{
    if (text[0] == '\0' || text[strspn(text, "0123456789")] != '\0')
        usage();
    unsigned long value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        unsigned long digit = (unsigned long)(*c - '0');
        if (value > (max - digit) / 10)
            usage();
        value = value * 10 + digit;
    }
    if (value == 0 && !zero_allowed)
        usage();
    return value;
}

static long milliseconds_now(void)
{
    struct timespec now;

    if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
        die("clock_gettime");
    return (long)now.tv_sec * MILLISECONDS_PER_SECOND +
           now.tv_nsec / NANOSECONDS_PER_MILLISECOND;
}

/* Every connection is a descriptor: raise the soft limit to what we
   need, which an unprivileged process may do up to the hard limit. */
static void raise_descriptor_limit(size_t connections)
{
    struct rlimit limit;
    rlim_t needed = (rlim_t)connections + SPARE_DESCRIPTORS;

    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("getrlimit");
    if (limit.rlim_cur >= needed)
        return;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
        fprintf(stderr,
                "many-clients: %zu connections need %lu descriptors, but the hard "
                "limit is %lu (ulimit -Hn): raise it, or ask for fewer connections\n",
                connections, (unsigned long)needed, (unsigned long)limit.rlim_max);
        exit(EXIT_FAILURE);
    }
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("setrlimit");
}

/* ==== One connection ==== */

static void settle(struct run *run, struct connection *c, enum state state)
{
    c->state = state;
    run->settled++;
}

static void close_fd(struct connection *c)
{
    if (c->fd >= 0 && close(c->fd) < 0)
        die("close");
    c->fd = -1;
}

static void fail(struct run *run, struct connection *c, const char *why)
{
    if (run->failed == 0)
        fprintf(stderr, "many-clients: first failure, connection %zu: %s\n",
                (size_t)(c - run->connections), why);
    run->failed++;
    if (c->answered == 0)
        run->opening--;
    close_fd(c);
    settle(run, c, FAILED);
}

static void want(struct run *run, struct connection *c, unsigned events)
{
    struct epoll_event event = {.events = events,
                                .data.u64 = (uint64_t)(c - run->connections)};

    if (epoll_ctl(run->epoll, EPOLL_CTL_MOD, c->fd, &event) < 0)
        die("epoll_ctl");
}

/* Opens the connection: a non-blocking connect(2), finished when the
   socket becomes writable. */
static void open_connection(struct run *run, struct connection *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(run, c, strerror(errno));
        return;
    }
    struct epoll_event event = {.events = EPOLLOUT,
                                .data.u64 = (uint64_t)(c - run->connections)};
    if (epoll_ctl(run->epoll, EPOLL_CTL_ADD, c->fd, &event) < 0)
        die("epoll_ctl");
    c->state = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&run->server, sizeof run->server) < 0 &&
        errno != EINPROGRESS)
        fail(run, c, strerror(errno));
}

/* Writes what is left of the request; asks for the response when done. */
static void send_request(struct run *run, struct connection *c)
{
    while (c->sent < sizeof REQUEST - 1) {
        ssize_t n =
            send(c->fd, REQUEST + c->sent, sizeof REQUEST - 1 - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(run, c, EPOLLOUT);
            return;
        }
        if (n < 0) {
            fail(run, c, strerror(errno));
            return;
        }
        c->sent += (size_t)n;
    }
    c->state = RECEIVING;
    c->received = 0;
    want(run, c, EPOLLIN);
}

/* Starts the connection's next request, connecting again if needed. */
static void start_request(struct run *run, struct connection *c)
{
    c->sent = 0;
    if (c->fd < 0) {
        if (c->answered > 0)
            run->reconnections++;
        open_connection(run, c);
        return;
    }
    c->state = SENDING;
    send_request(run, c);
}

static void connected(struct run *run, struct connection *c)
{
    int error = 0;
    socklen_t length = sizeof error;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0)
        die("getsockopt");
    if (error != 0) {
        fail(run, c, strerror(error));
        return;
    }
    c->state = SENDING;
    send_request(run, c);
}

/* The value of a header field, found by its name (case-insensitive) at
   the start of a line of the head; NULL if there is none. */
static const char *field_value(const char *head, const char *name)
{
    size_t length = strlen(name);

    for (const char *line = strstr(head, "\r\n"); line != NULL;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, length) == 0 && line[2 + length] == ':')
            return line + 2 + length + 1 + strspn(line + 2 + length + 1, " \t");
    }
    return NULL;
}

/* A complete response is in the buffer: check it, and go on. */
static void answered(struct run *run, struct connection *c, bool server_closes)
{
    if (c->answered == 0)
        run->opening--;
    c->answered++;
    run->answered++;
    if (server_closes)
        close_fd(c);
    if (c->answered == run->requests) {
        if (!run->hold)
            close_fd(c);
        settle(run, c, run->hold ? IDLE : FINISHED);
    } else if (run->hold) {
        settle(run, c, IDLE);
    } else {
        start_request(run, c);
    }
}

/* Is the response whole? If so, or if it is broken, go on; if not,
   wait for more (at_end: the server closed, there is no more). */
static void check_response(struct run *run, struct connection *c, bool at_end)
{
    c->buffer[c->received] = '\0';
    char *end = strstr(c->buffer, "\r\n\r\n");
    if (end == NULL) {
        if (at_end || c->received == RESPONSE_MAX - 1)
            fail(run, c, at_end ? "closed before a whole head" : "head too large");
        return;
    }
    end[2] = '\0'; /* the head, each line ending in CR LF */
    const char *length_text = field_value(c->buffer, "Content-Length");
    size_t head = (size_t)(end + 4 - c->buffer);
    unsigned long length = length_text ? strtoul(length_text, NULL, 10) : 0;
    bool ok = strncmp(c->buffer, "HTTP/1.1 200 ", sizeof "HTTP/1.1 200 " - 1) == 0;
    const char *connection = field_value(c->buffer, "Connection");
    bool closes = connection && strncasecmp(connection, "close", 5) == 0;
    end[2] = '\r';
    if (length_text == NULL || length > RESPONSE_MAX - 1 - head) {
        fail(run, c, "no Content-Length, or too large a body");
        return;
    }
    if (c->received < head + length) {
        if (at_end)
            fail(run, c, "closed before the whole body");
        return;
    }
    if (c->received > head + length || !ok) {
        fail(run, c, ok ? "more than one response" : "a status other than 200");
        return;
    }
    answered(run, c, closes || at_end);
}

static void receive_response(struct run *run, struct connection *c)
{
    ssize_t n = recv(c->fd, c->buffer + c->received, RESPONSE_MAX - 1 - c->received, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        fail(run, c, strerror(errno));
        return;
    }
    c->received += (size_t)n;
    check_response(run, c, n == 0);
}

static void handle(struct run *run, struct connection *c)
{
    switch (c->state) {
    case CONNECTING: connected(run, c); break;
    case SENDING: send_request(run, c); break;
    case RECEIVING: receive_response(run, c); break;
    case IDLE:
        /* the server closed an idle connection: open it again next round */
        close_fd(c);
        break;
    default: break;
    }
}

/* ==== All of them ==== */

/* Opens connections, no more than OPENING_MAX at once that have not
   had their first answer: a connection is established as soon as it is
   in the server's listen queue (listen(2)), and more at once than the
   queue holds would only be dropped, and tried again a second later. */
static void open_more(struct run *run)
{
    while (run->opened < run->count && run->opening < OPENING_MAX) {
        struct connection *c = &run->connections[run->opened++];
        run->opening++;
        start_request(run, c);
    }
}

/* With --hold: when every connection is answered (or failed), the next
   round starts. Returns false when the last round is over. */
static bool next_round(struct run *run)
{
    if (run->settled < run->count)
        return true;
    if (run->round == run->requests)
        return false;
    run->round++;
    for (size_t i = 0; i < run->count; i++) {
        struct connection *c = &run->connections[i];
        if (c->state == IDLE) {
            run->settled--;
            start_request(run, c);
        }
    }
    return true;
}

static void drive(struct run *run)
{
    long deadline =
        milliseconds_now() + (long)DEADLINE_SECONDS * MILLISECONDS_PER_SECOND;

    while (run->hold ? next_round(run) : run->settled < run->count) {
        open_more(run);
        long left = deadline - milliseconds_now();
        if (left <= 0)
            break;
        struct epoll_event events[EVENTS_MAX];
        int ready = epoll_wait(run->epoll, events, EVENTS_MAX, (int)left);
        if (ready < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < ready; i++)
            handle(run, &run->connections[events[i].data.u64]);
    }
}

/* Waits for standard input to end, the connections still open. */
static void hold_until_stdin_ends(const struct run *run)
{
    char buffer[64];

    printf("holding %zu connections open\n", run->count - run->failed);
    if (fflush(stdout) == EOF)
        die("fflush");
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

int main(int argc, char *argv[])
{
    struct run run = {.round = 1};
    int first = 1;

    if (argc > 1 && strcmp(argv[1], "--hold") == 0) {
        run.hold = true;
        first = 2;
    }
    if (argc - first < 1 || argc - first > 3)
        usage();
    unsigned long port = parse_number(argv[first], PORT_MAX, false);
    run.count = argc - first > 1 ? parse_number(argv[first + 1], CONNECTIONS_MAX, false)
                                 : DEFAULT_CONNECTIONS;
    run.requests = argc - first > 2 ? parse_number(argv[first + 2], REQUESTS_MAX, false)
                                    : DEFAULT_REQUESTS;
    run.server = (struct sockaddr_in){.sin_family = AF_INET,
                                      .sin_port = htons((in_port_t)port),
                                      .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    raise_descriptor_limit(run.count);
    run.connections = calloc(run.count, sizeof *run.connections);
    if (run.connections == NULL)
        die("calloc");
    for (size_t i = 0; i < run.count; i++)
        run.connections[i].fd = -1;
    run.epoll = epoll_create1(EPOLL_CLOEXEC);
    if (run.epoll < 0)
        die("epoll_create1");

    drive(&run);
    unsigned long expected = (unsigned long)run.count * run.requests;
    bool all = run.answered == expected && run.failed == 0;
    printf("%zu connections, %lu requests each: %lu of %lu answered, %zu connections "
           "failed, %lu reconnections%s\n",
           run.count, run.requests, run.answered, expected, run.failed,
           run.reconnections, run.settled < run.count ? ", out of time" : "");
    if (run.hold)
        hold_until_stdin_ends(&run);
    free(run.connections);
    return all ? EXIT_SUCCESS : EXIT_FAILURE;
}
