/*
 * Step 09: one process, every connection at once.
 *
 * One process waits on all its connections at once with epoll(7), and
 * only ever does work that is ready: it reads what has arrived, answers
 * the requests that are complete, and waits again. The sockets are
 * non-blocking, so that no read(2) or write(2) ever waits: each
 * connection remembers where it stopped, and goes on when epoll says it
 * can. Timeouts are deadlines kept in lists, and epoll_wait(2) sleeps
 * until the nearest one.
 *
 * Build and run:  make step-09 && ./step09 [PORT [ADDRESS]]
 */
#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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
    RESPONSE_TIMEOUT_SECONDS = 5, /* to take a response we could not send at once */
    KEEPALIVE_TIMEOUT_SECONDS = 2, /* to start the next request */
    LINGER_SECONDS = 2, /* to wait for the client to close */
    /* Responses */
    RESPONSE_BODY_MAX = 256,
    RESPONSE_MAX = 1024, /* status line, header fields and body */
    DATE_MAX = sizeof "Sun, 06 Nov 1994 08:49:37 GMT",
    /* Connections */
    KEEPALIVE_REQUESTS_MAX = 100, /* on one connection, then we close */
    DISCARD_BUFFER_SIZE = 512, /* bytes read at a time while we wait */
    EVENTS_MAX = 64, /* events taken from epoll_wait(2) at a time */
};
#define DEFAULT_ADDRESS "127.0.0.1"

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

/* What we send back. The body is text, so it can be built with snprintf.
   Unless keep_alive is set, the server closes the connection after it. */
struct response {
    int status;
    const char *content_type;
    char body[RESPONSE_BODY_MAX];
    bool keep_alive;
};

/* A response on its way out: its bytes, and how many the socket took. */
struct outgoing {
    char bytes[RESPONSE_MAX];
    size_t length;
    size_t sent;
    int status;
    bool keep_alive;
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

/* write(2) may take fewer bytes than we ask (a short write), and on a
   non-blocking socket none at all while the socket's buffer is full
   (EAGAIN): what is left waits in `outgoing` until epoll says there is
   room. Returns false if the write failed. */
static bool send_outgoing(int fd, struct outgoing *outgoing)
{
    while (outgoing->sent < outgoing->length) {
        ssize_t count = write(fd, outgoing->bytes + outgoing->sent,
                              outgoing->length - outgoing->sent);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (count < 0) {
            warn("write");
            return false;
        }
        outgoing->sent += (size_t)count;
    }
    return true;
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

/* Puts the status line, the header fields and, unless the request was
   HEAD, the body in `outgoing`, to be sent in one write. */
static void format_response(const struct request *request,
                            const struct response *response, struct outgoing *outgoing)
{
    bool is_head = request->method == METHOD_HEAD;
    const char *allow = allow_field(request, response);
    char date[DATE_MAX];
    const char *connection = connection_field(request, response);

    format_http_date(date);
    int length = snprintf(outgoing->bytes, sizeof outgoing->bytes,
                          "HTTP/1.1 %d %s\r\n"
                          "Date: %s\r\n"
                          "Content-Type: %s\r\n"
                          "Content-Length: %zu\r\n"
                          "%s"
                          "%s"
                          "\r\n"
                          "%s",
                          response->status, reason_phrase(response->status), date,
                          response->content_type, strlen(response->body), allow,
                          connection, is_head ? "" : response->body);
    outgoing->status = response->status;
    outgoing->keep_alive = response->keep_alive;
    outgoing->sent = 0;
    outgoing->length = 0;
    if (length < 0 || (size_t)length >= sizeof outgoing->bytes) {
        fprintf(stderr, "response does not fit in %d bytes\n", RESPONSE_MAX);
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

/* What the client sent, the request parsed from it, and the response
   going out: what step 08's child kept on its stack. */
struct buffers {
    struct received received;
    struct request request;
    struct outgoing outgoing;
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
    struct buffers *buffers;
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
    struct queue queues[STATES];
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
   REQUEST_TIMEOUT_SECONDS to send its first request, as in step 05. Its
   buffers are its own for as long as it lasts, as they were the child's
   in step 08. */
static void open_connection(struct server *server, int fd,
                            const struct sockaddr_in *peer)
{
    struct connection *connection = calloc(1, sizeof *connection);
    struct buffers *buffers = calloc(1, sizeof *buffers);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = connection};

    if (connection == NULL || buffers == NULL) {
        warn("calloc");
    } else if (epoll_ctl(server->epoll, EPOLL_CTL_ADD, fd, &event) < 0) {
        warn("epoll_ctl");
    } else {
        connection->fd = fd;
        connection->buffers = buffers;
        connection->events = EPOLLIN;
        format_endpoint(peer, connection->peer);
        start_timeout(server, connection, READING);
        printf("accepted %s on fd %d\n", connection->peer, fd);
        return;
    }
    free(buffers);
    free(connection);
    close_connection(fd);
}

/* close(2) takes the descriptor out of epoll's set too, since it is the
   last one of its socket: we never dup(2) it, nor fork(2). */
static void end_connection(struct server *server, struct connection *connection)
{
    dequeue(&server->queues[connection->state], connection);
    close_connection(connection->fd);
    free(connection->buffers);
    free(connection);
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

    log_access(connection->peer, request, buffers->outgoing.status,
               buffers->outgoing.sent);
    if (!buffers->outgoing.keep_alive) {
        /* request->body is set once the whole request has been read. */
        close_after_response(server, connection,
                             request->body != NULL && buffers->received.length == used);
        return LET_GO;
    }
    forget_request(&buffers->received, used);
    buffers->request = (struct request){0};
    if (buffers->received.length == 0) {
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
                   outgoing->sent);
        end_connection(server, connection);
        return LET_GO;
    }
    if (outgoing->sent < outgoing->length) {
        if (connection->state != WRITING)
            enter_state(server, connection, WRITING);
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
                                   : route(request);
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
    struct received *received = &connection->buffers->received;
    ssize_t count = receive(connection->fd, received->bytes, HEAD_MAX);
    if (count > 0) {
        received->length = (size_t)count;
        enter_state(server, connection, READING);
        serve_requests(server, connection);
        return;
    }
    if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
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

/* A connection's deadline has passed: what that means depends on its
   state too. */
static void time_out(struct server *server, struct connection *connection)
{
    switch (connection->state) {
    case READING: respond(server, connection, reject(408, "timed out")); return;
    case WRITING:
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

/* Takes the connections that are queued, EVENTS_MAX at most, so that the
   open connections get their turn too. Out of descriptors (EMFILE), the
   connection stays queued and the listener ready: epoll_wait(2) reports
   it again at once, and the loop spins until a connection closes. Step
   10 pauses instead. */
static void accept_connections(struct server *server)
{
    for (int accepted = 0; accepted < EVENTS_MAX; accepted++) {
        struct sockaddr_in peer;
        int fd = accept_connection(server->listener, &peer);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                warn("accept4");
            return;
        }
        open_connection(server, fd, &peer);
    }
}

/* How long epoll_wait may sleep, in milliseconds: until the nearest
   deadline, rounded up so as not to wake just before it, or for ever
   (-1) if nothing has one. */
static int next_timeout(const struct server *server)
{
    long long nearest = LLONG_MAX;

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

/* epoll_wait(2), with the log written first: stdout is a file or a pipe
   for most servers, and fully buffered, so a line waits in stdio's buffer
   until we flush it. Before we sleep, as step 07 did before each wait for
   a client. Returns how many events there are. */
static int wait_for_events(int epoll, struct epoll_event events[EVENTS_MAX],
                           int timeout)
{
    flush_log();
    int count = epoll_wait(epoll, events, EVENTS_MAX, timeout);
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
    struct server server = {.listener = listener, .epoll = create_epoll(listener)};
    printf("listening on http://%s/\n", text);
    serve_forever(&server);
}
