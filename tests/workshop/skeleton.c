/*
 * The workshop's starting point for step 01: a program that reads its
 * command line and waits, with no socket yet. Step 01 adds socket(2).
 *
 * Build and run:  make workshop STEP=01 && workshop/01/server [PORT [ADDRESS]]
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

/* stdout is fully buffered when it is not a terminal: a pipe, a file.
   Flush before we block, so that what we printed can be read now. */
static void flush_log(void)
{
    if (fflush(stdout) == EOF)
        die("fflush");
}

/* ==== The socket ==== */

/* ==== Running the server ==== */

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
    parse_arguments(argc, argv); /* bind(2) uses the address from step 02 on */

    /* Step 01: create the socket here, and print its descriptor. */
    wait_for_interrupt();
}
