/*
 * The floor: the fastest server of the benchmark, and no more than that.
 *
 * One process, one epoll(7) instance, level-triggered. Every read(2) that
 * returns bytes is answered with one write(2) of the same fixed response:
 * the page the steps serve, in a valid HTTP/1.1 response. It parses
 * nothing, so it answers anything, even half a request, and it sends no
 * Date field (an origin server with a clock must: RFC 9110, 6.6.1). It is
 * not a server to copy; it is the speed nobody can beat by much, because
 * it makes only the system calls that every server must make: one read,
 * one write, and a share of epoll_wait(2) per request.
 *
 * With "close", it says Connection: close and closes after each response,
 * for the benchmark's rows with a new connection per request.
 *
 *   make build/floor && build/floor [PORT [keep-alive|close]]
 *
 * It listens on 127.0.0.1; PORT 0 (the default) lets the kernel pick one.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    PORT_MAX = 65535,
    PORT_DIGITS_MAX = 5,
    EXIT_USAGE = 2,
    LISTEN_BACKLOG = 4096, /* SOMAXCONN on current kernels */
    EVENTS_MAX = 256, /* taken from epoll_wait(2) at a time */
    READ_BUFFER_SIZE = 4096, /* a request, or a few pipelined ones */
};

static const char KEEP_ALIVE_RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                                          "Content-Type: text/html\r\n"
                                          "Content-Length: 21\r\n"
                                          "\r\n"
                                          "<h1>hello world</h1>\n";
static const char CLOSE_RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                                     "Content-Type: text/html\r\n"
                                     "Content-Length: 21\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "<h1>hello world</h1>\n";

static _Noreturn void die(const char *call)
{
    fprintf(stderr, "floor: %s: %s\n", call, strerror(errno));
    exit(EXIT_FAILURE);
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: floor [PORT [keep-alive|close]]\n");
    exit(EXIT_USAGE);
}

static in_port_t parse_port(const char *text)
{
    size_t digits = strspn(text, "0123456789");
    if (digits == 0 || digits > PORT_DIGITS_MAX || text[digits] != '\0')
        usage();
    long port = strtol(text, NULL, 10);
    if (port > PORT_MAX)
        usage();
    return (in_port_t)port;
}

/* A non-blocking listening socket on 127.0.0.1:port; prints the port. */
static int listen_on(in_port_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    int yes = 1;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) < 0)
        die("setsockopt");
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0)
        die("bind");
    if (listen(fd, LISTEN_BACKLOG) < 0)
        die("listen");
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) < 0)
        die("getsockname");
    printf("listening on http://127.0.0.1:%u/\n", (unsigned)ntohs(address.sin_port));
    if (fflush(stdout) == EOF)
        die("fflush");
    return fd;
}

static void watch(int epoll, int fd)
{
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};

    if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0)
        die("epoll_ctl");
}

/* close(2) also takes the descriptor out of the epoll set. */
static void hang_up(int fd)
{
    if (close(fd) < 0)
        perror("floor: close");
}

/* Accepts every connection queued. A failure is the client's, or a
   passing shortage (EMFILE): the benchmark shows it as errors. */
static void accept_all(int epoll, int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                perror("floor: accept4");
            return;
        }
        watch(epoll, fd);
    }
}

/* One read and, for bytes, one write of the whole response. A response
   is about 100 bytes, far less than a socket's send buffer: a short
   write means a client that does not read, and it loses its connection. */
static void answer(int fd, bool closing)
{
    char buffer[READ_BUFFER_SIZE];
    const char *response = closing ? CLOSE_RESPONSE : KEEP_ALIVE_RESPONSE;
    size_t length =
        closing ? sizeof CLOSE_RESPONSE - 1 : sizeof KEEP_ALIVE_RESPONSE - 1;

    ssize_t got = read(fd, buffer, sizeof buffer);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (got <= 0) {
        hang_up(fd);
        return;
    }
    ssize_t sent = write(fd, response, length);
    if (sent != (ssize_t)length || closing)
        hang_up(fd);
}

/* The loop: wait for what is ready, and do it. */
static _Noreturn void serve_forever(int listener, bool closing)
{
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0)
        die("epoll_create1");
    watch(epoll, listener);
    for (;;) {
        struct epoll_event events[EVENTS_MAX];
        int ready = epoll_wait(epoll, events, EVENTS_MAX, -1);
        if (ready < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < ready; i++) {
            if (events[i].data.fd == listener)
                accept_all(epoll, listener);
            else
                answer(events[i].data.fd, closing);
        }
    }
}

int main(int argc, char *argv[])
{
    bool closing = false;

    if (argc > 3)
        usage();
    if (argc > 2) {
        if (strcmp(argv[2], "close") == 0)
            closing = true;
        else if (strcmp(argv[2], "keep-alive") != 0)
            usage();
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");
    serve_forever(listen_on(argc > 1 ? parse_port(argv[1]) : 0), closing);
}
