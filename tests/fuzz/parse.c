/*
 * A libFuzzer target for the request parser of steps 05 to 11.
 *
 * It fuzzes the step's own code, not a copy: the Makefile passes the
 * step's server.c as STEP_SOURCE, and we include it whole. Its main()
 * becomes step_main(), which we never call; its static functions are ours
 * to call. Build and run with: make fuzz (see tests/fuzz/run).
 *
 * For each input, the target does what the server does with the bytes a
 * client sends, minus the sockets:
 *   1. find_head_end() on the input all at once, one byte at a time, and in
 *      pieces of 2 to 17 bytes (the input picks): all must find the same end,
 *      since the server scans again after every read(2), from where it was;
 *   2. parse_head() on a copy of the head alone, in a heap buffer of exactly
 *      its length, so that AddressSanitizer catches a read one byte past it;
 *   3. checks what a parsed request promises: every string it points to ends
 *      inside the head (or, for the path of a target in absolute-form, inside
 *      origin_form), the target's form agrees with its method, and the
 *      numbers stay within the step's limits;
 *   4. from step 06 on, route() for a request that parsed, error_response()
 *      for one that did not, and send_response() into /dev/null (step 09:
 *      format_response(), whose bytes are checked);
 *   5. from step 07 on, before that, whether the request keeps the
 *      connection open (its Connection fields), which the response then
 *      says; and, as if the input were pipelined requests, forget_request()
 *      of the first one must leave exactly the bytes after it;
 *   6. in step 09, whose event loop reads whatever has arrived and then
 *      looks for a request in its buffer (find_request, read_limit): the
 *      whole conversation, with the input arriving all at once, a byte at
 *      a time, and in pieces of a size the input picks. Each read stops at
 *      read_limit(); each complete request is answered (format_response)
 *      and, kept alive, forgotten (forget_request) before the next one is
 *      looked for. The three must agree, request by request, and the bytes
 *      past what was read are poisoned, so that AddressSanitizer catches
 *      the server looking at bytes it has not received.
 *   7. in steps 10 and 11, decode_path() of the path: a name never longer
 *      than the path, with no slash that the path did not have, and
 *      is_not_modified() of its If-Modified-Since field.
 * Any broken promise calls abort(), which libFuzzer reports as a crash.
 */
#define main step_main
#include STEP_SOURCE /* first: it defines _GNU_SOURCE before any header */
#undef main

#include <fcntl.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Like assert(), but never compiled out. */
#define require(condition)                                                                       \
    do {                                                                                         \
        if (!(condition)) {                                                                      \
            fprintf(stderr, "fuzz/parse.c:%d: broken promise: %s\n", __LINE__, #condition);       \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* A string the parser hands out must start and end inside the head. */
static void require_inside(const char *text, const char *head, size_t length)
{
    if (text == NULL)
        return;
    require(text >= head && text < head + length);
    size_t text_length = strnlen(text, (size_t)(head + length - text));
    require(text + text_length < head + length); /* its NUL is in the head too */
}

/* The path is "/..." or "*", and "*" only for OPTIONS. It points into the
   head, unless the target came in absolute-form: then into origin_form. */
static void require_path(const struct request *request, const char *head, size_t length)
{
    require(request->path != NULL);
    if (request->path == request->origin_form)
        require(strnlen(request->origin_form, sizeof request->origin_form) <
                sizeof request->origin_form);
    else
        require_inside(request->path, head, length);
    require(request->path[0] == '/' || strcmp(request->path, "*") == 0);
    require(strcmp(request->path, "*") != 0 || strcmp(request->method, "OPTIONS") == 0);
}

static bool is_parser_status(int status)
{
    return status == 400 || status == 413 || status == 414 || status == 431 ||
           status == 501 || status == 505;
}

/* What parse_head() promises, for a head of `length` bytes at `head`. */
static void require_parsed(struct rejection rejection, const struct request *request,
                           const char *head, size_t head_length)
{
    if (rejected(rejection)) {
        require(is_parser_status(rejection.status));
        require(rejection.reason[0] != '\0');
    } else {
        require_inside(request->method, head, head_length);
        require_inside(request->target, head, head_length);
        require_inside(request->version, head, head_length);
        require(is_token(request->method));
        require(strlen(request->target) <= TARGET_MAX);
        require_path(request, head, head_length);
        require(strncmp(request->version, "HTTP/1.", strlen("HTTP/1.")) == 0);
        require_inside(request->host, head, head_length);
        require(request->host == NULL || is_host_and_port(request->host, strlen(request->host)));
        require(request->field_count <= FIELDS_MAX);
        for (size_t i = 0; i < request->field_count; i++) {
            require_inside(request->fields[i].name, head, head_length);
            require_inside(request->fields[i].value, head, head_length);
            require(strlen(request->fields[i].name) < FIELD_LINE_MAX);
        }
        require_inside(request->content_length, head, head_length);
        require(request->transfer_encoding == NULL);
        require(request->body_length <= BODY_MAX);
        require(request->content_length != NULL || request->body_length == 0);
    }
}

/* The server reads into a buffer of HEAD_MAX bytes until find_head_end()
   finds an end; each read(2) may bring any number of bytes. */
static size_t find_head_end_in_pieces(const char *bytes, size_t length, size_t piece)
{
    size_t received = 0;
    size_t scanned = 0;

    while (received < length) {
        received += piece < length - received ? piece : length - received;
        size_t end = find_head_end(bytes, received, scanned);
        if (end != 0)
            return end;
        scanned = received;
    }
    return 0;
}

#ifdef STEP_FINDS_REQUESTS
#include <sanitizer/asan_interface.h>

/* What format_response() promises: one whole response, whose status line,
   Content-Length and Connection fields say what it is. */
static void require_response(const struct request *request,
                             const struct response *response,
                             const struct outgoing *outgoing)
{
    char status_line[sizeof "HTTP/1.1 999 "];
    snprintf(status_line, sizeof status_line, "HTTP/1.1 %d ", response->status);
    require(outgoing->length > 0 && outgoing->length < sizeof outgoing->bytes);
    require(outgoing->sent == 0);
    require(outgoing->status == response->status);
    require(outgoing->keep_alive == response->keep_alive);
    require(strlen(outgoing->bytes) == outgoing->length); /* no NUL inside */
    require(strncmp(outgoing->bytes, status_line, strlen(status_line)) == 0);

    const char *end = strstr(outgoing->bytes, "\r\n\r\n");
    require(end != NULL);
    const char *field = strstr(outgoing->bytes, "\r\nContent-Length: ");
    require(field != NULL && field < end);
    unsigned long content_length = strtoul(field + strlen("\r\nContent-Length: "), NULL, 10);
    require(content_length == strlen(response->body));
    size_t body_length = outgoing->length - (size_t)(end + 4 - outgoing->bytes);
    bool is_head = request->method != NULL && strcmp(request->method, "HEAD") == 0;
    require(body_length == (is_head ? 0 : content_length));
    const char *close = strstr(outgoing->bytes, "\r\nConnection: close\r\n");
    require((close != NULL && close < end) == !response->keep_alive);
}

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
static struct outgoing reading_outgoing;

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
   complete, as respond() and finish_response() do. The bytes of the
   buffer past what was read are poisoned: AddressSanitizer reports any
   look at them. */
static void converse(const uint8_t *data, size_t size, size_t piece,
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
        require_parsed(rejection, request, reading.bytes, request->head_length);
        size_t used = request->head_length + request->body_length;
        if (!rejected(rejection)) {
            require(request->body == reading.bytes + request->head_length);
            require(used <= reading.length);
        }

        struct response response = rejected(rejection)
                                       ? error_response(rejection.status, rejection.reason)
                                       : route(request);
        served++;
        response.keep_alive = !rejected(rejection) && wants_keep_alive(request) &&
                              served < KEEPALIVE_REQUESTS_MAX;
        format_response(request, &response, &reading_outgoing);
        require_response(request, &response, &reading_outgoing);
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
        require(memcmp(reading.bytes, data + read - reading.length, reading.length) == 0);
        reading_request = (struct request){0};
    }
}

/* However the bytes arrive, the server answers the same requests the same
   way: all at once, a byte at a time, in pieces of 2 to 65 bytes. */
static void require_same_conversation(const uint8_t *data, size_t size)
{
    static struct conversation conversations[3];
    const size_t pieces[3] = {SIZE_MAX, 1, (size_t)data[0] % 64 + 2};

    for (size_t i = 0; i < 3; i++)
        converse(data, size, pieces[i], &conversations[i]);
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
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* Exactly the bytes received, so that reading one more is caught. */
    size_t length = size < HEAD_MAX ? size : HEAD_MAX;
    char *bytes = malloc(length);
    require(bytes != NULL);
    memcpy(bytes, data, length);

    size_t head_length = find_head_end(bytes, length, 0);
    require(head_length <= length);
    require(find_head_end_in_pieces(bytes, length, 1) == head_length);
    size_t piece = (size_t)(unsigned char)bytes[length - 1] % 16 + 2;
    require(find_head_end_in_pieces(bytes, length, piece) == head_length);
    free(bytes);
    if (head_length == 0)
        return 0; /* the server would read more, or answer 414 or 431 */

    char *head = malloc(head_length);
    require(head != NULL);
    memcpy(head, data, head_length);
    struct request request = {.head_length = head_length};
    struct rejection rejection = parse_head(head, head_length, &request);

    require_parsed(rejection, &request, head, head_length);

#ifdef STEP_RESPONDS
    static int sink = -1;
    if (sink < 0)
        sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    require(sink >= 0);
    struct response response =
        rejected(rejection) ? error_response(rejection.status, rejection.reason) : route(&request);
    require(reason_phrase(response.status)[0] != '\0'); /* every status we send has a name */
    require(strlen(response.body) < sizeof response.body - 1); /* never cut short */
#ifdef STEP_KEEPS_ALIVE
    if (!rejected(rejection)) {
        response.keep_alive = wants_keep_alive(&request);
        require(!response.keep_alive || !has_connection_option(&request, "close"));
    }
#endif
#ifdef STEP_FINDS_REQUESTS
    static struct outgoing outgoing;
    format_response(&request, &response, &outgoing);
    require_response(&request, &response, &outgoing);
    require(send_outgoing(sink, &outgoing) && outgoing.sent == outgoing.length);
#else
    require(send_response(sink, &request, &response) > 0);
#endif
#endif
#ifdef STEP_SERVES_FILES
    if (!rejected(rejection) && request.path[0] == '/') {
        /* The name the kernel will open beneath ROOT: decoded once, never
           longer than the path, and with a slash only where the path has
           one (an encoded slash, %2F, is refused, never decoded). */
        char name[TARGET_MAX + sizeof INDEX_FILE];
        struct rejection refused =
            decode_path(request.path, name, sizeof name - strlen(INDEX_FILE));
        size_t path_length = strcspn(request.path, "?");
        if (rejected(refused)) {
            require(refused.status == 400 || refused.status == 404);
        } else {
            require(name[0] == '/');
            require(strlen(name) <= path_length);
            size_t slashes = 0, path_slashes = 0;
            for (const char *c = name; *c != '\0'; c++)
                slashes += *c == '/';
            for (size_t i = 0; i < path_length; i++)
                path_slashes += request.path[i] == '/';
            require(slashes == path_slashes);
            require(media_type(name)[0] != '\0');
        }
        /* If-Modified-Since is read strictly: a date it takes is one that
           is not older than itself, and no file from before 1970 is new. */
        (void)is_not_modified(&request, 0);
        (void)is_not_modified(&request, (time_t)INT32_MAX);
    }
#endif
#ifdef STEP_KEEPS_ALIVE
    static struct received received; /* too large for the stack */
    size_t used = head_length + request.body_length;
    if (!rejected(rejection) && used <= size) {
        memcpy(received.bytes, data, size);
        received.length = size;
        forget_request(&received, used);
        require(received.length == size - used);
        require(memcmp(received.bytes, data + used, received.length) == 0);
    }
#endif
    free(head);
#ifdef STEP_FINDS_REQUESTS
    require_same_conversation(data, size);
#endif
    return 0;
}
