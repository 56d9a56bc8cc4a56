/*
 * A libFuzzer target for the responses of a step that responds (steps/list).
 *
 * It fuzzes the step's own code, not a copy: the Makefile passes the
 * step's server.c as STEP_SOURCE, and we include it whole, linked with the
 * step's http.c. Its main() becomes step_main(), which we never call; its
 * static functions are ours to call. What the step can do (steps/list)
 * comes as STEP_KEEPS_ALIVE, STEP_LOOP and STEP_FILES. The parser itself is
 * fuzzed apart (tests/fuzz/parse.c). Build and run with: make fuzz (see
 * tests/fuzz/run).
 *
 * The client is the other end of a socket pair: each response goes out as
 * the step sends it, send_response() (before the event loop) or
 * format_response() and send_outgoing() (the loop steps, with sendfile(2)
 * for a file), and the target reads back the bytes a client would
 * receive. For each input:
 *   1. the head at the start of the input, parsed; route() for a request
 *      that parsed, error_response() for one that did not; in the steps
 *      that keep alive, whether the request keeps the connection open (its
 *      Connection fields), as the server decides it;
 *   2. the bytes received must be one whole response that says what the
 *      step decided: the status line with its reason phrase; no NUL and no
 *      control character in the head, each field a token, a colon and a
 *      value; one Content-Length, which is the text body's length or the
 *      file's size; a body of exactly that many bytes, none for HEAD and
 *      304; Connection: close when the connection closes (keep-alive for
 *      HTTP/1.0 when it does not); Allow with 405 and OPTIONS;
 *   3. in the steps that serve files, from a site made once in /tmp
 *      (make_site: files, a directory with its own index.html and one
 *      without, a name that needs %3F and %25, an empty file, symbolic
 *      links inside and outside, a FIFO): a file's body is the bytes of the
 *      file opened, and Last-Modified its date; a 301 says Location: its
 *      path and "/"; a 304 only answers If-Modified-Since, without a body;
 *      no 403, 500 or 503 (a leaked descriptor would end in EMFILE, 503).
 *      decode_path() of the path gives a name never longer than the path,
 *      with no slash that the path did not have;
 *   4. in the steps that keep alive, as if the input were pipelined
 *      requests, forget_request() of the first one must leave exactly the
 *      bytes after it;
 *   5. in the loop steps, whose event loop reads whatever has arrived and
 *      then looks for a request in its buffer (find_request, read_limit):
 *      the whole conversation, with the input arriving all at once, a byte
 *      at a time, and in pieces of a size the input picks. Each read stops
 *      at read_limit(); each complete request is answered (sent and checked
 *      as above when the input came all at once, only formatted otherwise:
 *      sending all three would halve the runs) and, kept alive, forgotten
 *      (forget_request) before the next one is looked for. The three must
 *      agree, request by request, and the bytes past what was read are
 *      poisoned, so that AddressSanitizer catches the server looking at
 *      bytes it has not received;
 *   6. every descriptor the step opened for the input is closed after it.
 * Any broken promise calls abort(), which libFuzzer reports as a crash.
 */
#define main step_main
#include STEP_SOURCE /* first: it defines _GNU_SOURCE before any header */
#undef main

#include <fcntl.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What to clean up before the fuzzer dies: on exit, on a sanitizer's
   report, and on a broken promise. */
static void clean_up(void);

/* Like assert(), but never compiled out. */
#define require(condition)                                                             \
    do {                                                                               \
        if (!(condition)) {                                                            \
            fprintf(stderr, "fuzz/respond.c:%d: broken promise: %s\n", __LINE__,       \
                    #condition);                                                       \
            clean_up();                                                                \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* The connection: the step writes to server_end (non-blocking, as the
   loop's sockets are: a response that does not fit is a broken promise,
   not a hang), and we read what it sent from client_end. */
static int server_end = -1;
static int client_end = -1;

/* A response as the client receives it: the largest head, and the largest
   file of the site, fit. */
enum { REPLY_MAX = RESPONSE_MAX + 1024 };
static char reply[REPLY_MAX];

/* The value of a field sent once, in a head whose lines end in NULs, or
   NULL if it was not sent. */
struct fields {
    const char *content_length;
    const char *connection;
    const char *allow;
    const char *location;
    const char *last_modified;
};

/* ==== What differs from step to step ==== */

#ifdef STEP_KEEPS_ALIVE
static bool keeps_alive(const struct response *response)
{
    return response->keep_alive;
}

/* As the server decides it: never after a rejection, since we cannot tell
   where the next request begins, and never past KEEPALIVE_REQUESTS_MAX. */
static void decide_keep_alive(struct response *response, const struct request *request,
                              struct rejection rejection, unsigned long served)
{
    response->keep_alive = !rejected(rejection) && wants_keep_alive(request) &&
                           served < KEEPALIVE_REQUESTS_MAX;
    require(!response->keep_alive || !has_connection_option(request, "close"));
}

/* Pipelining: forget_request() of the first request leaves the bytes
   after it, at the front, and nothing else. */
static void require_forgets(const uint8_t *data, size_t size,
                            const struct request *request, struct rejection rejection)
{
    static struct received received; /* too large for the stack */
    size_t used = request->head_length + request->body_length;

    if (rejected(rejection) || used > size)
        return;
    memcpy(received.bytes, data, size);
    received.length = size;
    forget_request(&received, used);
    require(received.length == size - used);
    require(memcmp(received.bytes, data + used, received.length) == 0);
}
#else
static bool keeps_alive(const struct response *response)
{
    (void)response;
    return false; /* the step closes after every response */
}

static void decide_keep_alive(struct response *response, const struct request *request,
                              struct rejection rejection, unsigned long served)
{
    (void)response, (void)request, (void)rejection, (void)served;
}

static void require_forgets(const uint8_t *data, size_t size,
                            const struct request *request, struct rejection rejection)
{
    (void)data, (void)size, (void)request, (void)rejection;
}
#endif

#ifdef STEP_FILES
/* The site: made once in /tmp, each file with a body of its own and one
   date, SITE_DATE; removed when the fuzzer exits or crashes (not when it
   is killed, or times out: rm -r /tmp/fuzz-site-* then). */
static const time_t SITE_MODIFIED = 784111777;
static const char SITE_DATE[] = "Sun, 06 Nov 1994 08:49:37 GMT";
static struct site_file {
    const char *name;
    const char *content;
    ino_t inode; /* once made */
} site_files[] = {
    {"index.html", "<h1>the site's index</h1>\n", 0},
    {"style.css", "p { color: teal }\n", 0},
    {"empty.txt", "", 0},
    {"guide/index.html", "<p>the guide's own index</p>\n", 0},
    {"guide/what? 100%.txt", "a name that needs %3F and %25\n", 0},
};
/* guide serves its index.html; nothing has none: 404. */
static const char *const SITE_DIRECTORIES[] = {"guide", "nothing"};
/* Symbolic links, the first inside the site, the others leading out. */
static const char *const SITE_LINKS[][2] = {{"link.css", "style.css"},
                                            {"guide/up", "../index.html"},
                                            {"escape", "/etc/passwd"},
                                            {"guide/out", "../../etc"}};
static const char SITE_FIFO[] = "fifo"; /* not a regular file: 404 */
static char site_path[] = "/tmp/fuzz-site-XXXXXX";
static int site = -1; /* the directory, to remove it */
static int root = -1; /* the step's descriptor of it, from open_root() */

static void clean_up(void)
{
    if (site < 0)
        return;
    for (size_t i = 0; i < sizeof site_files / sizeof site_files[0]; i++)
        (void)unlinkat(site, site_files[i].name, 0);
    for (size_t i = 0; i < sizeof SITE_LINKS / sizeof SITE_LINKS[0]; i++)
        (void)unlinkat(site, SITE_LINKS[i][0], 0);
    (void)unlinkat(site, SITE_FIFO, 0);
    for (size_t i = 0; i < sizeof SITE_DIRECTORIES / sizeof SITE_DIRECTORIES[0]; i++)
        (void)unlinkat(site, SITE_DIRECTORIES[i], AT_REMOVEDIR);
    (void)rmdir(site_path);
    (void)close(site);
    site = -1;
}

static void make_site(void)
{
    const struct timespec dates[2] = {{.tv_sec = SITE_MODIFIED},
                                      {.tv_sec = SITE_MODIFIED}};

    require(mkdtemp(site_path) != NULL);
    site = open(site_path, O_DIRECTORY | O_CLOEXEC);
    require(site >= 0);
    require(atexit(clean_up) == 0);
    __sanitizer_set_death_callback(clean_up);
    for (size_t i = 0; i < sizeof SITE_DIRECTORIES / sizeof SITE_DIRECTORIES[0]; i++)
        require(mkdirat(site, SITE_DIRECTORIES[i], 0755) == 0);
    for (size_t i = 0; i < sizeof site_files / sizeof site_files[0]; i++) {
        struct site_file *file = &site_files[i];
        int fd =
            openat(site, file->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        require(fd >= 0);
        size_t length = strlen(file->content);
        require(write(fd, file->content, length) == (ssize_t)length);
        require(futimens(fd, dates) == 0);
        struct stat status;
        require(fstat(fd, &status) == 0);
        file->inode = status.st_ino;
        require(close(fd) == 0);
    }
    for (size_t i = 0; i < sizeof SITE_LINKS / sizeof SITE_LINKS[0]; i++)
        require(symlinkat(SITE_LINKS[i][1], site, SITE_LINKS[i][0]) == 0);
    require(mkfifoat(site, SITE_FIFO, 0644) == 0);
    root = open_root(site_path);
}

/* What decode_path() promises: the name the kernel will open beneath the
   root is decoded once, never longer than the path, and has a slash only
   where the path has one (an encoded slash, %2F, is refused, never
   decoded). */
static void require_decoded(const struct request *request)
{
    if (request->path[0] != '/')
        return; /* "*" */
    char name[TARGET_MAX + sizeof INDEX_FILE];
    struct rejection refused =
        decode_path(request->path, name, sizeof name - strlen(INDEX_FILE));
    size_t path_length = strcspn(request->path, "?");
    if (rejected(refused)) {
        require(refused.status == 400 || refused.status == 404);
        return;
    }
    require(name[0] == '/');
    require(strlen(name) <= path_length);
    size_t slashes = 0, path_slashes = 0;
    for (const char *c = name; *c != '\0'; c++)
        slashes += *c == '/';
    for (size_t i = 0; i < path_length; i++)
        path_slashes += request->path[i] == '/';
    require(slashes == path_slashes);
    require(media_type(name)[0] != '\0');
    /* If-Modified-Since is read strictly, and no file from before 1970 is new. */
    (void)is_not_modified(request, 0);
    (void)is_not_modified(request, (time_t)INT32_MAX);
}

static struct response route_request(const struct request *request)
{
    require_decoded(request);
    return route(request, root);
}

/* What route() may answer to a request that parsed: never 403 (the site
   has no file we may not read), 500 or 503. */
static bool is_route_status(int status)
{
    return status == 200 || status == 301 || status == 304 || status == 400 ||
           status == 404 || status == 405 || status == 411 || status == 414 ||
           status == 501;
}

/* The site's file open as `fd`: the one with its inode. */
static const struct site_file *site_file_of(int fd)
{
    struct stat status;

    require(fstat(fd, &status) == 0 && S_ISREG(status.st_mode));
    for (size_t i = 0; i < sizeof site_files / sizeof site_files[0]; i++)
        if (site_files[i].inode == status.st_ino)
            return &site_files[i];
    require(!"a file that is not the site's");
    return NULL;
}

/* The file the response sends, if it does (not for HEAD nor 304): looked
   at before the step sends it and closes it. */
static const struct site_file *file_sent(const struct response *response)
{
    return response->has_file && response->file >= 0 ? site_file_of(response->file)
                                                     : NULL;
}

/* A response about a file: its size, or -1 for a text body. */
static long long file_length(const struct response *response)
{
    return response->has_file ? (long long)response->file_size : -1;
}

/* A file's body, Last-Modified, a 301's Location, a 304. */
static void require_file_reply(const struct request *request,
                               const struct response *response,
                               const struct site_file *sent,
                               const struct fields *fields, const char *body,
                               size_t body_length)
{
    if (response->has_file) {
        require(response->status == 200 || response->status == 304);
        require(fields->last_modified != NULL &&
                strcmp(fields->last_modified, SITE_DATE) == 0);
        bool is_site_size = false;
        for (size_t i = 0; i < sizeof site_files / sizeof site_files[0]; i++)
            is_site_size |=
                (long long)strlen(site_files[i].content) == response->file_size;
        require(is_site_size);
    } else {
        require(fields->last_modified == NULL);
    }
    if (sent != NULL) {
        require(body_length == strlen(sent->content));
        require(memcmp(body, sent->content, body_length) == 0);
    }
    if (response->status == 304) {
        bool asked = false;
        for (size_t i = 0; i < request->field_count; i++)
            asked |= strcasecmp(request->fields[i].name, "If-Modified-Since") == 0;
        require(asked);
    }
    if (response->status == 301) {
        size_t path_length = strcspn(request->path, "?");
        require(fields->location != NULL);
        require(strncmp(fields->location, request->path, path_length) == 0);
        require(strcmp(fields->location + path_length, "/") == 0);
    } else {
        require(fields->location == NULL);
    }
}
#else
struct site_file; /* no site: no file is ever sent */

static void make_site(void)
{
}

static void clean_up(void)
{
}

static struct response route_request(const struct request *request)
{
    return route(request);
}

static bool is_route_status(int status)
{
    return status == 200 || status == 404 || status == 405 || status == 411 ||
           status == 501;
}

static const struct site_file *file_sent(const struct response *response)
{
    (void)response;
    return NULL;
}

static long long file_length(const struct response *response)
{
    (void)response;
    return -1;
}

static void require_file_reply(const struct request *request,
                               const struct response *response,
                               const struct site_file *sent,
                               const struct fields *fields, const char *body,
                               size_t body_length)
{
    (void)request, (void)sent, (void)body, (void)body_length;
    require(response->status != 301 && response->status != 304);
    require(fields->location == NULL && fields->last_modified == NULL);
}
#endif

#ifdef STEP_LOOP
/* format_response(): the response's bytes, and its file. */
static struct outgoing *format(const struct request *request,
                               const struct response *response)
{
    static struct outgoing outgoing;

    format_response(request, response, &outgoing);
    require(outgoing.length > 0 &&
            outgoing.length < sizeof outgoing.bytes); /* it fit */
    require(outgoing.sent == 0);
    require(outgoing.status == response->status);
    require(outgoing.keep_alive == keeps_alive(response));
    return &outgoing;
}

/* What finish_response() does with the file: it is closed. */
static void finish(struct outgoing *outgoing)
{
#ifdef STEP_FILES
    close_outgoing_file(outgoing);
#else
    (void)outgoing;
#endif
}

/* send_outgoing(), as continue_writing() does: the socket takes it all,
   and the file, if any, whole. */
static void send_to_client(const struct request *request,
                           const struct response *response)
{
    struct outgoing *outgoing = format(request, response);

    require(send_outgoing(server_end, outgoing));
    require(outgoing->sent == outgoing->length);
#ifdef STEP_FILES
    require(is_sent(outgoing));
#endif
    finish(outgoing);
}
#else
static void send_to_client(const struct request *request,
                           const struct response *response)
{
    require(send_response(server_end, request, response) > 0);
}
#endif

/* ==== The response, as the client receives it ==== */

/* Everything the step sent since the last response. */
static size_t receive_reply(void)
{
    size_t length = 0;

    for (;;) {
        ssize_t count =
            recv(client_end, reply + length, sizeof reply - length, MSG_DONTWAIT);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0) {
            require(errno == EAGAIN || errno == EWOULDBLOCK);
            return length;
        }
        require(count > 0); /* the server's end is never closed */
        size_t room = sizeof reply - length;
        length += (size_t)count;
        require(length < sizeof reply);
        if ((size_t)count < room) /* recv(2) on a stream socket took all there was */
            return length;
    }
}

/* Splits the head's lines (its CR LFs become NULs), checks that each field
   line is name ": " value, and keeps the fields we know, each sent once. */
static void read_fields(char *head, size_t head_length, struct fields *fields)
{
    char *line = strstr(head, "\r\n") + 2; /* after the status line */
    char *end = head + head_length - 2; /* the last CR LF */

    while (line < end) {
        char *cr = strstr(line, "\r\n");
        require(cr != NULL && cr < end);
        *cr = '\0';
        char *colon = strchr(line, ':');
        require(colon != NULL && colon > line && colon[1] == ' ' && colon[2] != ' ');
        for (char *c = line; c < colon; c++)
            require(*c > ' ' && *c < 0x7f &&
                    strchr("()<>@,;:\\\"/[]?={} \t", *c) == NULL);
        *colon = '\0';
        const char *value = colon + 2;
        const char **known =
            strcmp(line, "Content-Length") == 0  ? &fields->content_length
            : strcmp(line, "Connection") == 0    ? &fields->connection
            : strcmp(line, "Allow") == 0         ? &fields->allow
            : strcmp(line, "Location") == 0      ? &fields->location
            : strcmp(line, "Last-Modified") == 0 ? &fields->last_modified
                                                 : NULL;
        if (known != NULL) {
            require(*known == NULL);
            *known = value;
        }
        line = cr + 2;
    }
}

/* The bytes received say what the step decided: see the top of this file. */
static void require_reply(const struct request *request,
                          const struct response *response, const struct site_file *sent,
                          size_t length)
{
    static char head[REPLY_MAX];

    const char *end = memmem(reply, length, "\r\n\r\n", 4);
    require(end != NULL);
    size_t head_length = (size_t)(end + 4 - reply);
    const char *body = end + 4;
    size_t body_length = length - head_length;
    for (size_t i = 0; i < head_length; i++) /* no NUL, no control character */
        require((reply[i] >= ' ' && reply[i] < 0x7f) || reply[i] == '\r' ||
                reply[i] == '\n');
    for (size_t i = 0; i < head_length; i++) /* no CR nor LF but in CR LF */
        require((reply[i] == '\r') == (i + 1 < head_length && reply[i + 1] == '\n') &&
                (reply[i] != '\n' || (i > 0 && reply[i - 1] == '\r')));
    memcpy(head, reply, head_length);
    head[head_length] = '\0';

    char status_line[sizeof "HTTP/1.1 999 \r\n" + 64];
    require(reason_phrase(response->status)[0] != '\0'); /* every status has a name */
    snprintf(status_line, sizeof status_line, "HTTP/1.1 %d %s\r\n", response->status,
             reason_phrase(response->status));
    require(strncmp(head, status_line, strlen(status_line)) == 0);

    struct fields fields = {0};
    read_fields(head, head_length, &fields);
    require(fields.content_length != NULL);
    require(fields.content_length[0] != '\0' &&
            strspn(fields.content_length, "0123456789") ==
                strlen(fields.content_length));
    unsigned long long content_length = strtoull(fields.content_length, NULL, 10);
    long long file_size = file_length(response);
    require(content_length ==
            (file_size >= 0 ? (unsigned long long)file_size : strlen(response->body)));
    bool has_body = request->method != METHOD_HEAD && response->status != 304;
    require(body_length == (has_body ? content_length : 0));
    if (file_size < 0)
        require(memcmp(body, response->body, body_length) == 0);

    const char *connection = !keeps_alive(response) ? "close"
                             : is_http_1_0(request) ? "keep-alive"
                                                    : NULL;
    require(connection == NULL ? fields.connection == NULL
                               : fields.connection != NULL &&
                                     strcmp(fields.connection, connection) == 0);
    bool allows = response->status == 405 ||
                  (request->method == METHOD_OPTIONS && response->status == 200);
    require(allows ? fields.allow != NULL &&
                         strcmp(fields.allow, "GET, HEAD, POST, OPTIONS") == 0
                   : fields.allow == NULL);
    require_file_reply(request, response, sent, &fields, body, body_length);
}

/* What the step answers to a request, or a rejection: route(), or
   error_response(), and whether the connection stays open. `served`: the
   requests answered on the connection, this one included. */
static struct response decide(const struct request *request, struct rejection rejection,
                              unsigned long served)
{
    struct response response;

    if (rejected(rejection)) {
        require(rejection.status != NO_RESPONSE);
        response = error_response(rejection.status, rejection.reason);
        require(response.status == rejection.status);
    } else {
        response = route_request(request);
        require(is_route_status(response.status));
    }
    require(strlen(response.body) < sizeof response.body - 1); /* never cut short */
    decide_keep_alive(&response, request, rejection, served);
    return response;
}

/* Answers as the step does, and checks what the client receives. */
static struct response answer(const struct request *request, struct rejection rejection,
                              unsigned long served)
{
    struct response response = decide(request, rejection, served);
    const struct site_file *sent = file_sent(&response);

    send_to_client(request, &response);
    require_reply(request, &response, sent, receive_reply());
    return response;
}

/* ==== The whole conversation, in the loop steps ==== */

#ifdef STEP_LOOP
/* What the server made of one request of a conversation. */
struct outcome {
    size_t start; /* where the request began in the input */
    size_t used; /* its head and body, if it was not rejected */
    int status;
    bool keep_alive;
};

/* A conversation: the requests answered in order, then how it ended. */
struct conversation {
    struct outcome outcomes[KEEPALIVE_REQUESTS_MAX];
    size_t count;
    bool closed_by_server; /* after a response without keep-alive */
    size_t left; /* if not: the bytes of a request not complete at the end */
};

/* One connection's buffers, as hold_buffers() gives them: static, since
   struct received is too large for the stack. */
static struct received reading;
static struct request reading_request;

/* read(2) on the connection: takes at most `piece` of the bytes the client
   has sent and the server not read yet, and never goes past read_limit(),
   as receive_more() and start_next_request() do. */
static void receive_piece(const uint8_t *data, size_t size, size_t *read, size_t piece)
{
    size_t limit = read_limit(&reading_request);
    require(limit <= sizeof reading.bytes);
    require(reading.length < limit); /* never a read(2) of 0 bytes */
    size_t count = limit - reading.length;
    if (count > piece)
        count = piece;
    if (count > size - *read)
        count = size - *read;
    ASAN_UNPOISON_MEMORY_REGION(reading.bytes + reading.length, count);
    memcpy(reading.bytes + reading.length, data + *read, count);
    reading.length += count;
    *read += count;
}

/* The server's side of a conversation whose bytes arrive in pieces of at
   most `piece` bytes: after each read, serve_requests() answers what is
   complete, as respond() and finish_response() do. The responses are
   sent and checked when `delivered`; else only formatted, since the
   conversations must agree anyway. The bytes of the buffer past what was
   read are poisoned: AddressSanitizer reports any look at them. */
static void converse(const uint8_t *data, size_t size, size_t piece, bool delivered,
                     struct conversation *conversation)
{
    size_t read = 0; /* bytes of the input read so far */
    unsigned long served = 0;

    ASAN_POISON_MEMORY_REGION(reading.bytes, sizeof reading.bytes);
    reading.length = 0;
    reading.scanned = 0;
    reading_request = (struct request){0};
    *conversation = (struct conversation){0};
    for (;;) {
        struct request *request = &reading_request;
        struct rejection rejection = find_request(&reading, request);
        if (!rejected(rejection) && request->body == NULL) {
            if (read == size) { /* the client sends no more */
                conversation->left = reading.length;
                return;
            }
            receive_piece(data, size, &read, piece);
            continue;
        }
        size_t used = request->head_length + request->body_length;
        if (!rejected(rejection)) {
            require(request->body == reading.bytes + request->head_length);
            require(used <= reading.length);
        }

        struct response response;
        if (delivered) {
            response = answer(request, rejection, ++served);
        } else {
            response = decide(request, rejection, ++served);
            finish(format(request, &response));
        }
        require(conversation->count < KEEPALIVE_REQUESTS_MAX);
        conversation->outcomes[conversation->count++] =
            (struct outcome){.start = read - reading.length,
                             .used = rejected(rejection) ? 0 : used,
                             .status = response.status,
                             .keep_alive = response.keep_alive};
        if (!response.keep_alive) {
            conversation->closed_by_server = true;
            return;
        }

        /* Pipelining: what follows the request stays, at the front. */
        size_t length = reading.length;
        forget_request(&reading, used);
        require(reading.length == length - used && reading.scanned == 0);
        ASAN_POISON_MEMORY_REGION(reading.bytes + reading.length, used);
        require(memcmp(reading.bytes, data + read - reading.length, reading.length) ==
                0);
        reading_request = (struct request){0};
    }
}

/* However the bytes arrive, the server answers the same requests the same
   way: all at once (the responses sent and checked), a byte at a time, in
   pieces of 2 to 65 bytes. */
static void require_same_conversation(const uint8_t *data, size_t size)
{
    static struct conversation conversations[3];
    const size_t pieces[3] = {SIZE_MAX, 1, (size_t)data[0] % 64 + 2};

    for (size_t i = 0; i < 3; i++)
        converse(data, size, pieces[i], i == 0, &conversations[i]);
    for (size_t i = 1; i < 3; i++) {
        const struct conversation *all = &conversations[0];
        const struct conversation *pieced = &conversations[i];
        require(pieced->count == all->count);
        require(pieced->closed_by_server == all->closed_by_server);
        require(pieced->left == all->left);
        for (size_t n = 0; n < all->count; n++) {
            require(pieced->outcomes[n].start == all->outcomes[n].start);
            require(pieced->outcomes[n].used == all->outcomes[n].used);
            require(pieced->outcomes[n].status == all->outcomes[n].status);
            require(pieced->outcomes[n].keep_alive == all->outcomes[n].keep_alive);
        }
    }
}
#else
static void require_same_conversation(const uint8_t *data, size_t size)
{
    (void)data, (void)size; /* one request at a time, read from the socket */
}
#endif

/* ==== The target ==== */

/* The lowest descriptor free: the same after every input, or the step has
   left one open. */
static int lowest_free_descriptor(void)
{
    int fd = fcntl(client_end, F_DUPFD_CLOEXEC, 0);
    require(fd >= 0 && close(fd) == 0);
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* The step logs to stdout, a line a request: not into the fuzzer's log. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    require(null >= 0 && dup2(null, STDOUT_FILENO) == STDOUT_FILENO &&
            close(null) == 0);
    int ends[2];
    require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) == 0);
    server_end = ends[0];
    client_end = ends[1];
    require(fcntl(server_end, F_SETFL, O_NONBLOCK) == 0);
    make_site();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int free_descriptor = -1;

    if (size == 0)
        return 0;
    if (free_descriptor < 0)
        free_descriptor = lowest_free_descriptor();

    size_t length = size < HEAD_MAX ? size : HEAD_MAX;
    size_t head_length = find_head_end((const char *)data, length, 0);
    if (head_length != 0) {
        /* Exactly the head, as the server has it when it parses it. */
        char *head = malloc(head_length);
        require(head != NULL);
        memcpy(head, data, head_length);
        struct request request = {.head_length = head_length};
        struct rejection rejection = parse_head(head, head_length, &request);
        answer(&request, rejection, 1);
        require_forgets(data, size, &request, rejection);
        free(head);
    }
    require_same_conversation(data, size);
    require(lowest_free_descriptor() == free_descriptor);
    return 0;
}
