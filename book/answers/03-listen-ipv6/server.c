/*
 * Step 03: listen.
 *
 * The server calls listen(2): the kernel now completes TCP handshakes
 * and queues the connections, though nothing accepts them yet.
 *
 * Exercise: listen on ::1 as well, on the same port.
 *
 * Build and run:  make answers && build/answers/03-listen-ipv6 [PORT [ADDRESS]]
 */
#define _POSIX_C_SOURCE 200809L /* POSIX sockets, getpid(2), pause(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every number the server depends on, named once. */
enum {
    DEFAULT_PORT = 8080,
    PORT_MAX = 65535,
    EXIT_USAGE = 2,
    ENDPOINT_TEXT_MAX = INET_ADDRSTRLEN + sizeof ":65535",
    LISTEN_BACKLOG = 128, /* connections the kernel queues for us */
};
#define DEFAULT_ADDRESS "127.0.0.1"

/* ==== The command line and the log ==== */

/* A system call failed and we cannot go on: say which one, and why. */
static _Noreturn void die(const char *call)
{
    fprintf(stderr, "%s: %s\n", call, strerror(errno));
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

static bool is_decimal(const char *text)
{
    return text[0] != '\0' && text[strspn(text, "0123456789")] == '\0';
}

/* Reads a decimal number no larger than max; false if text is not one. */
static bool parse_number(const char *text, unsigned long max, unsigned long *value)
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

/* ==== Running the server ==== */

/* The same socket for IPv6, ipv6(7). IPV6_V6ONLY keeps it to IPv6,
   whatever the system's default (net.ipv6.bindv6only): IPv4 is the first
   socket's job. With ::1 it changes nothing; with ::, the IPv6 "any"
   address, the socket would take IPv4 too, and its bind(2) would clash
   with the first socket's. */
static int create_ipv6_socket(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;

    if (fd < 0)
        die("socket AF_INET6");
    printf("created IPv6 socket fd %d in process %ld\n", fd, (long)getpid());
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)
        die("setsockopt IPV6_V6ONLY");
    return fd;
}

/* Binds the IPv6 socket to ::1, the IPv6 loopback address, on the port
   the IPv4 socket got (in network byte order), and listens. */
static void listen_ipv6(int fd, in_port_t port)
{
    struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = port};
    int on = 1;

    address.sin6_addr = in6addr_loopback;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt SO_REUSEADDR");
    if (bind(fd, (const struct sockaddr *)&address, sizeof address) < 0) {
        fprintf(stderr, "bind [::1]:%u: %s\n", (unsigned)ntohs(port), strerror(errno));
        exit(EXIT_FAILURE);
    }
    start_listening(fd);
    printf("listening on http://[::1]:%u/\n", (unsigned)ntohs(port));
}

/* There is nothing more to do yet: sleep until a signal, such as the
   SIGINT that Ctrl-C sends, ends the process, so that you can look at it
   from another terminal. pause(2) returns only after a signal handler
   has run, and we have none. */
static void wait_for_interrupt(void)
{
    printf("waiting; press Ctrl-C to stop\n");
    flush_log();
    for (;;)
        pause();
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
    listen_ipv6(create_ipv6_socket(), address.sin_port);
    wait_for_interrupt();
}
