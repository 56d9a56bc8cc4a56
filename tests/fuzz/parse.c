/*
 * A libFuzzer target for the request parser of step 05, 06 or 07.
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
 *   4. in steps 06 and 07, route() for a request that parsed,
 *      error_response() for one that did not, and send_response() into
 *      /dev/null;
 *   5. in step 07, before that, whether the request keeps the connection
 *      open (its Connection fields), which the response then says; and,
 *      as if the input were pipelined requests, forget_request() of the
 *      first one must leave exactly the bytes after it;
 *   6. in step 10, decode_path() of the path: a name never longer than
 *      the path, with no slash that the path did not have, and
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

    if (rejected(rejection)) {
        require(is_parser_status(rejection.status));
        require(rejection.reason[0] != '\0');
    } else {
        require_inside(request.method, head, head_length);
        require_inside(request.target, head, head_length);
        require_inside(request.version, head, head_length);
        require(is_token(request.method));
        require(strlen(request.target) <= TARGET_MAX);
        require_path(&request, head, head_length);
        require(strncmp(request.version, "HTTP/1.", strlen("HTTP/1.")) == 0);
        require_inside(request.host, head, head_length);
        require(request.host == NULL || is_host_and_port(request.host, strlen(request.host)));
        require(request.field_count <= FIELDS_MAX);
        for (size_t i = 0; i < request.field_count; i++) {
            require_inside(request.fields[i].name, head, head_length);
            require_inside(request.fields[i].value, head, head_length);
            require(strlen(request.fields[i].name) < FIELD_LINE_MAX);
        }
        require_inside(request.content_length, head, head_length);
        require(request.transfer_encoding == NULL);
        require(request.body_length <= BODY_MAX);
        require(request.content_length != NULL || request.body_length == 0);
    }

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
    require(send_response(sink, &request, &response) > 0);
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
    return 0;
}
